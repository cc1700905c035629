/**
 * Quotas and the ledger below the gateway: calendar periods asked out of order, quota names
 * in rules and settings, per-key overrides on every kind of selection, and the memory
 * store's ledger on each way a request is refused.
 */
import t from 'tap'
import { Calendar, LedgerDays, daysBetween } from '../../src/algorithms/calendar.js'
import { ManualClock } from '../../src/core/clock.js'
import { makeConcurrencyLimit } from '../../src/core/policy.js'
import { parseRate } from '../../src/core/rate.js'
import { loadConfig, rulesContext } from '../../src/config/index.js'
import { parseRules } from '../../src/config/rules.js'
import { resolve } from '../../src/control/settings.js'
import { createLimits } from '../../src/limiter/limits.js'
import { MemoryStore } from '../../src/store/memory.js'
import { heaviest } from '../../src/store/usage.js'
import { apiKeyId, type Identity } from '../../src/identity/identify.js'
import { policy } from '../helpers/store-contract.js'

const BASE = { UPSTREAM_URL: 'http://127.0.0.1:1' }

t.test('a calendar answers for any instant, in any order', async t => {
  const month = new Calendar('month', 'UTC')
  t.equal(month.periodEnd(Date.UTC(2026, 1, 10)), Date.UTC(2026, 2, 1), 'the end asked first')
  t.equal(month.periodStart(Date.UTC(2026, 0, 10)), Date.UTC(2026, 0, 1), 'then an earlier month')
  t.equal(month.periodEnd(Date.UTC(2026, 0, 31, 23)), Date.UTC(2026, 1, 1))
  const days = new LedgerDays('Asia/Tokyo', day => ({ day }))
  t.equal(days.at(Date.UTC(2026, 10, 29, 15)).day, '2026-11-30', '15:00 UTC is midnight in Tokyo')
  t.equal(days.at(Date.UTC(2026, 10, 29, 14)).day, '2026-11-29', 'and back')
  t.same(daysBetween('2028-02-28', '2028-03-01', 10), ['2028-02-28', '2028-02-29', '2028-03-01'])
  t.equal(daysBetween('2026-01-01', '2026-01-05', 3), undefined, 'more than the most')
})

t.test('quota names in rules: a rule\'s cost must fit a quota, and a rule limit cannot take a quota\'s name', async t => {
  const ctx = rulesContext(loadConfig({ ...BASE, RATE_LIMIT_QUOTA: '3/d', RATE_LIMIT_TIERS: 'free=10/s:20+4/mo' }))
  t.throws(() => parseRules(JSON.stringify({ rules: [{ name: 'big', path: '/b', cost: 4 }] }), ctx), /cost 4 is more than the capacity of limit "quota" \(3\)/)
  t.throws(() => parseRules(JSON.stringify({ rules: [{ name: 'big', path: '/b', cost: 5, rate: '10/s', burst: 10 }] }), rulesContext(loadConfig({ ...BASE, RATE_LIMIT_TIERS: 'free=10/s:20+4/mo' }))), /capacity of limit "free-quota" \(4\)/)
  t.throws(() => parseRules(JSON.stringify({ rules: [{ name: 'free-quota', path: '/b', rate: '1/s' }] }), ctx), /"free-quota" is taken by a built-in limit, a tier or a tier's quota/)
  t.doesNotThrow(() => parseRules(JSON.stringify({ rules: [{ name: 'x', path: '/b', cost: 4, exclusive: true, rate: '10/s', burst: 10 }] }), ctx), 'exclusive: the client\'s quota does not apply')
})

t.test('settings: quotas in tiers and per key are validated', async t => {
  const base = loadConfig({ ...BASE, RATE_LIMIT_TIERS: 'free=10/s:20+4/mo' })
  t.throws(() => resolve(base, [], { tiers: { free: { rate: '10/s', burst: 20, quota: 'lots' } } }, 1), /tiers.free: quota: expected/)
  t.throws(() => resolve(base, [], { keyQuotas: { 'ip:1.2.3.4': '5/mo' } }, 1), /keyQuotas: "ip:1.2.3.4" is not an API key's client key/)
  t.throws(() => resolve(base, [], { keyQuotas: { 'key:abc': '5.5/mo' } }, 1), /keyQuotas.key:abc: a quota counts whole requests/)
  t.equal(resolve(base, [], { tiers: { free: { rate: '10/s', burst: 20, quota: null } } }, 1).limits.tiers.get('free')!.quota, undefined, 'null: no quota')
  t.equal(resolve(base, [], { tiers: { free: { rate: '10/s', burst: 20 } } }, 1).limits.tiers.get('free')!.quota?.text, '4/mo', 'absent: the environment\'s')
  t.equal(resolve(base, [], { factor: 0.5 }, 1).limits.tiers.get('free')!.quota?.text, '4/mo', 'never scaled')
})

t.test('a key\'s own quota in every kind of selection', async t => {
  const base = loadConfig({ ...BASE, RATE_LIMIT_TIERS: 'free=10/s:20+4/mo', API_KEYS: 'k1:free,k2' })
  const rules = parseRules(JSON.stringify({ rules: [
    { name: 'solo', path: '/solo', exclusive: true, rate: '1/s' },
    { name: 'login', path: '/login', rate: '5/m', count: { status: [401] } }
  ] }), rulesContext(base))
  const eff = resolve(base, rules, { keyQuotas: { [apiKeyId('k1')]: '9/mo', [apiKeyId('k2')]: '7/w' } }, 1)
  const select = createLimits(eff.limits, eff.rules)
  const k1: Identity = { key: apiKeyId('k1'), source: 'api-key', tier: 'free' }
  const k2: Identity = { key: apiKeyId('k2'), source: 'api-key', tier: undefined }
  const at = (url: string, who: Identity) => select({ url, method: 'GET' } as never, who)
  t.same(at('/x', k1).policies.map(p => `${p.name}:${p.capacity}`), ['free:20', 'free-quota:9'], 'the tier\'s quota replaced')
  t.same(at('/x', k2).policies.map(p => `${p.name}:${p.capacity}`), ['default:20', 'quota:7'], 'a key without a tier\'s quota gets one')
  t.same(at('/solo', k1).policies.map(p => p.name), ['solo'], 'an exclusive rule: no client limits, no quota')
  const login = at('/login', k2)
  t.same([login.policies.map(p => p.name), login.ownFrom, login.settle?.ownFrom], [['default', 'quota', 'login'], 2, 2], 'the rule\'s own limits and its settlement move along')
  t.equal(at('/x', k1), at('/x', k1), 'built once per key')
  t.ok(select.ledger, 'quotas turn the ledger on')
  t.notOk(createLimits(loadConfig(BASE), []).ledger, 'without quotas or USAGE_LEDGER it is off')
})

t.test('the memory store\'s ledger counts every refusal: a ban, a full in-flight limit, with one limit or several', async t => {
  const clock = new ManualClock(Date.UTC(2026, 10, 29, 12))
  const store = new MemoryStore({ maxKeys: 100, clock, purgeIntervalMs: 0 })
  t.teardown(() => store.close())
  const mark = { day: '2026-11-29', ttlMs: 86_400_000 }
  const one = [policy('10/s', 10)]
  const two = [policy('10/s', 10), policy('10/s', 10, 'b')]
  const full = makeConcurrencyLimit('concurrency', 1)
  store.consume('c', one, 1, undefined, { limits: [full], subjects: undefined, lease: 'l1' }, mark)
  t.equal(store.consume('c', one, 1, undefined, { limits: [full], subjects: undefined, lease: 'l2' }, mark)[0]!.concurrency, full)
  t.equal(store.consume('c', two, 1, undefined, { limits: [full], subjects: undefined, lease: 'l3' }, mark)[0]!.concurrency, full)
  store.ban('c', 1000)
  t.equal(store.consume('c', one, 1, undefined, undefined, mark)[0]!.banned, true)
  t.same(store.usage('c', ['2026-11-29']), [{ day: '2026-11-29', admitted: 1, refused: 3, cost: 1 }])
  t.same(parseRate('3/mo').calendar, 'month')
})

t.test('the heaviest clients: most admitted, then most cost, then by name', async t => {
  t.same(heaviest([['b', 5, 0, 5], ['a', 5, 0, 5], ['c', 5, 1, 9], ['d', 7, 0, 1], ['a', 0, 2, 0]], 3).map(u => u.client), ['d', 'c', 'a'])
})
