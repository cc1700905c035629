import t from 'tap'
import { loadConfig } from '../../src/config/index.js'
import { parseRules } from '../../src/config/rules.js'
import { rulesContext } from '../../src/config/index.js'
import { resolve } from '../../src/control/settings.js'
import { fileURLToPath } from 'node:url'

t.test('scaling: buckets scale rate and burst, windows whole requests, never below the largest rule cost', async t => {
  const base = loadConfig({ UPSTREAM_URL: 'http://127.0.0.1:1', RATE_LIMIT_ALGORITHM: 'sliding-window', RATE_LIMIT_RATE: '10/m', GLOBAL_RATE_LIMIT_RATE: '100/s' })
  const rules = parseRules(JSON.stringify({ rules: [{ name: 'r', path: '/r', cost: 3, algorithm: 'token-bucket', rate: '5/s', burst: 8 }] }), rulesContext(base))
  const eff = resolve(base, rules, { factor: 0.25 }, 1)
  t.equal(eff.factor, 0.25)
  t.same(eff.limits.limit.rate, { count: 3, periodMs: 60_000, text: '3/m' }, 'a window: 10 × 0.25 = 2.5, floored to 2, raised to the cost 3')
  t.same(eff.limits.globalLimit!.rate.text, '25/s')
  t.match(eff.rules[0]!.limits[0], { rate: { count: 1.25, text: '1.25/s' }, burst: 3 }, 'a bucket: the rate scales freely, the burst floors to the cost')
  const adaptive = resolve(base, rules, { factor: 0.5 }, 0.5)
  t.equal(adaptive.factor, 0.25, 'emergency × adaptive')
  t.equal(resolve(base, rules, {}, 1).limits.limit, base.limit, 'factor 1: the limits as configured')
})

t.test('a factor below 1 never raises a limit, and every limit that can scale does (examples/rules.json)', async t => {
  const base = loadConfig({ UPSTREAM_URL: 'http://127.0.0.1:1', RATE_LIMIT_RULES_FILE: fileURLToPath(new URL('../../../examples/rules.json', import.meta.url)) })
  const half = resolve(base, base.rules, { factor: 0.5 }, 1)
  const limitOf = (eff: typeof half, rule: string, name = rule) => eff.rules.find(r => r.name === rule)!.limits.find(l => l.name === name)!
  t.match(limitOf(half, 'export', 'export-burst'), { burst: 1, rate: { text: '0.5/s' } }, 'export-burst: burst 2 → 1 (it rose to 5 before)')
  t.match(limitOf(half, 'export', 'export-daily'), { rate: { count: 50, text: '50/d' } })
  t.match(limitOf(half, 'upload'), { burst: 1, rate: { text: '1/s' } }, 'upload: burst stays 1, the leak rate halves')
  t.match(limitOf(half, 'login'), { rate: { count: 2, text: '2/m' } }, 'login (a window): 5/m → 2/m (it was not scaled at all before)')
  t.equal(half.limits.limit.burst, 10, 'the default limit: 20 → 10')
  for (const factor of [0.01, 0.1, 0.3, 0.5, 0.7, 0.99]) {
    const eff = resolve(base, base.rules, { factor }, 1)
    const pairs: Array<[string, { rate: { count: number }, burst: number }, { rate: { count: number }, burst: number }]> = [['default', base.limit, eff.limits.limit]]
    for (const r of base.rules) for (const [i, l] of r.limits.entries()) pairs.push([`${r.name}/${l.name}`, l, eff.rules.find(x => x.name === r.name)!.limits[i]!])
    for (const [name, before, after] of pairs) {
      t.ok(after.burst <= before.burst && after.rate.count <= before.rate.count, `factor ${factor}: ${name} did not rise (${before.burst}, ${before.rate.count} → ${after.burst}, ${after.rate.count})`)
    }
    const search = eff.limits.limit
    t.ok(search.burst >= 5, `factor ${factor}: the default burst keeps room for a search (cost 5): ${search.burst}`)
  }
})

t.test('managed API keys in the settings: checked against the environment, valid until their expiry or grace', async t => {
  const base = loadConfig({ UPSTREAM_URL: 'http://127.0.0.1:1', RATE_LIMIT_TIERS: 'pro=10/s:20' })
  const record = { id: 'k_abcdefgh', name: 'n', tier: 'pro', prefix: 'gw_abcd', createdAt: '2027-01-01T00:00:00Z', expiresAt: null, retiresAt: null }
  const keys = resolve(base, [], { apiKeys: { 'key:one': record, 'key:two': { ...record, tier: null, expiresAt: '2027-02-01T00:00:00Z', retiresAt: '2027-01-15T00:00:00Z' } } }, 1).keys
  t.match(keys.get('key:one'), { identity: { key: 'key:one', source: 'api-key', tier: 'pro' }, validUntil: Infinity })
  t.match(keys.get('key:two'), { identity: { tier: undefined }, validUntil: Date.parse('2027-01-15T00:00:00Z') }, 'the earlier of expiry and grace')
  t.throws(() => resolve(base, [], { apiKeys: { 'key:one': { ...record, tier: 'gold' } } }, 1), /apiKeys\.key:one: tier "gold" is not defined in RATE_LIMIT_TIERS/)
  t.throws(() => resolve(base, [], { apiKeys: { 'key:one': { ...record, createdAt: 'then' } } }, 1), /apiKeys\.key:one\.createdAt: "then" is not an ISO 8601 time/)
  t.throws(() => resolve(base, [], { apiKeys: { 'key:one': { ...record, expiresAt: 'soon' } } }, 1), /apiKeys\.key:one\.expiresAt/)
})
