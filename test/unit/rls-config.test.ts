/**
 * RLS_CONFIG as envoyproxy/ratelimit validates it (every refusal names the file and says
 * why), this gateway's own keys, and RLS_PORT/RLS_CONFIG through loadConfig.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { loadConfig } from '../../src/config/index.js'
import { parseRlsDocuments, loadRlsConfig } from '../../src/config/rls.js'
import { matchLimit, rlsPolicy, RlsPolicies } from '../../src/rls/limits.js'

const parse = (text: string) => parseRlsDocuments([{ name: 'f.yaml', text }])

t.test('refusals, each naming the file and what is wrong', async t => {
  const cases: Array<[string, RegExp]> = [
    ['domain: d\ndescriptors:\n  - key: a\n    bogus: 1\n', /^f\.yaml: unknown key 'bogus'$/],
    ['domain: d\ndescriptors: [1]\n', /a list holds something other than a map/],
    ['descriptors: []\n', /config file cannot have empty domain/],
    ['domain: d\ndescriptors:\n  - value: v\n', /descriptor has empty key/],
    ['domain: d\ndescriptors:\n  - key: a\n  - key: a\n', /duplicate descriptor composite key 'd\.a'/],
    ['domain: d\ndescriptors:\n  - key: a\n    rate_limit: {unit: fortnight, requests_per_unit: 1}\n', /d\.a: invalid rate limit unit 'fortnight'/],
    ['domain: d\ndescriptors:\n  - key: a\n    rate_limit: {requests_per_unit: 1}\n', /invalid rate limit unit ''/],
    ['domain: d\ndescriptors:\n  - key: a\n    rate_limit: {unlimited: true, unit: second}\n', /should not specify rate limit unit when unlimited/],
    ['domain: d\ndescriptors:\n  - key: a\n    rate_limit: {unit: second, requests_per_unit: -1}\n', /requests_per_unit: expected a whole number from 0/],
    ['domain: d\ndescriptors:\n  - key: a\n    rate_limit: {unit: second, requests_per_unit: 1.5}\n', /requests_per_unit: expected a whole number/],
    ['domain: d\ndescriptors:\n  - key: a\n    rate_limit: {unit: second, requests_per_unit: 1, unlimited: "yes"}\n', /unlimited: expected true or false/],
    ['domain: d\ndescriptors:\n  - key: a\n    rate_limit: {unit: second, requests_per_unit: 1, replaces: [{name: ""}]}\n', /should not have an empty replaces entry/],
    ['domain: d\ndescriptors:\n  - key: a\n    rate_limit: {unit: second, requests_per_unit: 1, name: n, replaces: [{name: n}]}\n', /replaces should not contain name of same descriptor/],
    ['domain: d\ndescriptors:\n  - key: a\n    rate_limit: {unit: second, requests_per_unit: 1, replaces: n}\n', /replaces must be a list/],
    ['domain: d\ndescriptors:\n  - key: a\n    rate_limit: 5\n', /d\.a: rate_limit must be a map/],
    ['domain: d\ndescriptors:\n  - key: a\n    rate_limit: {unit: second, requests_per_unit: 1, value: x}\n', /'value' does not belong in rate_limit/],
    ['domain: d\ndescriptors:\n  - key: a\n    unit: second\n', /'unit' does not belong in a descriptor/],
    ['domain: d\ndescriptors: {key: a}\n', /d: descriptors must be a list/],
    ['domain: d\ndescriptors:\n  - key: a\n    rate_limit: {unit: second, requests_per_unit: 1, algorithm: leaky-bucket}\n', /algorithm 'leaky-bucket' is not one of fixed-window, sliding-window, token-bucket/],
    ['domain: d\ndescriptors:\n  - key: a\n    rate_limit: {unit: second, requests_per_unit: 1, burst: 5}\n', /burst is a token bucket's/],
    ['domain: d\ndescriptors:\n  - key: a\n    rate_limit: {unit: month, requests_per_unit: 1, unit_multiplier: 2}\n', /a month is a calendar month/],
    ['domain: d\ndescriptors:\n  - key: a\n    rate_limit: {unit: second, requests_per_unit: 200000}\n', /faster than the maximum of 100000\/s/],
    ['domain: d\ndescriptors:\n  - key: []\n', /key: expected a string/],
    ['domain: [\n', /error loading config file/],
    ['- 1\n', /expected a map with domain and descriptors/]
  ]
  for (const [text, message] of cases) t.throws(() => parse(text), message, JSON.stringify(text))
  t.throws(() => parseRlsDocuments([{ name: 'a.yaml', text: 'domain: d\n' }, { name: 'b.yaml', text: 'domain: d\n' }]), /^b\.yaml: duplicate domain 'd' in config file$/)
})

t.test('what a valid file gives: the tree, names, our keys, scalars as text', async t => {
  const c = parse(`
domain: d
descriptors:
  - key: port
    value: 8080
    rate_limit: {unit: Minute, requests_per_unit: 10, unit_multiplier: 5, name: five}
  - key: flag
    value: true
    rate_limit: {unit: second, requests_per_unit: 3, algorithm: token-bucket, burst: 6}
    shadow_mode: true
  - key: quota
    rate_limit: {unit: month, requests_per_unit: 1000}
  - key: empty
    rate_limit:
  - key: open
    rate_limit: {unlimited: true}
`)
  const root = c.domains.get('d')!
  t.match(matchLimit(root, [{ key: 'port', value: '8080' }]), { path: 'd.port_8080', descriptor: 'port_8080', unit: 'minute', unitMultiplier: 5, name: 'five', algorithm: 'fixed-window' })
  t.match(matchLimit(root, [{ key: 'flag', value: 'true' }]), { algorithm: 'token-bucket', burst: 6, shadowMode: true })
  t.equal(matchLimit(root, [{ key: 'empty', value: 'x' }]), undefined, 'rate_limit: (empty) is no limit')
  t.match(matchLimit(root, [{ key: 'open' }]), { unlimited: true, unit: undefined })
  t.equal(matchLimit(undefined, [{ key: 'a', value: 'b' }]), undefined, 'an unknown domain')
  const policies = new RlsPolicies('Europe/Berlin')
  const month = policies.of(matchLimit(root, [{ key: 'quota', value: 'acme' }])!)
  t.match(month, { algorithm: 'fixed-window', capacity: 1000, rate: '1000/mo', name: 'd.quota' })
  t.equal(month.calendar?.unit, 'month', 'a month is a calendar month')
  t.equal(policies.of(matchLimit(root, [{ key: 'quota', value: 'other' }])!), month, 'made once per limit')
  t.match(policies.of(matchLimit(root, [{ key: 'port', value: '8080' }])!), { name: 'five', rate: '10/5m', windowMs: 300_000, policyItem: '"five";q=10;w=300' })
  t.match(rlsPolicy('we"ird\\näme', 'second', 0, 1, 'token-bucket', 1, false, 'UTC'), { name: 'we_ird_n_me', capacity: 0, algorithm: 'fixed-window', policyItem: '"we_ird_n_me";q=0;w=1' }, 'requests_per_unit 0: a window of capacity 0; a name made header-safe')
  // Overrides are remembered by rate, and forgotten all at once past 1024 of them.
  const first = policies.override('d', 1, 'second')
  t.equal(policies.override('d', 1, 'second'), first)
  for (let i = 2; i <= 1025; i++) policies.override('d', i, 'second')
  t.not(policies.override('d', 1, 'second'), first, 'a new one after the table was cleared')
})

t.test('a directory: its *.yaml and *.yml, by name; other files ignored', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'gw-rls-unit-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'b.yml'), 'domain: b\n')
  writeFileSync(join(dir, 'a.yaml'), 'domain: a\n')
  writeFileSync(join(dir, 'notes.txt'), 'not yaml: [')
  t.same([...loadRlsConfig(dir).domains.keys()], ['a', 'b'])
  t.same([...loadRlsConfig(join(dir, 'a.yaml')).domains.keys()], ['a'], 'or one file')

  const base = { UPSTREAM_URL: 'http://127.0.0.1:1' }
  t.equal(loadConfig(base).rls, undefined, 'off by default')
  t.match(loadConfig({ ...base, RLS_PORT: '9101', RLS_CONFIG: dir }).rls, { port: 9101, host: '127.0.0.1' })
  t.throws(() => loadConfig({ ...base, RLS_CONFIG: dir }), /RLS_CONFIG is set but RLS_PORT is not/)
  t.throws(() => loadConfig({ ...base, RLS_PORT: '9101' }), /RLS_CONFIG is required with RLS_PORT/)
  t.throws(() => loadConfig({ ...base, RLS_PORT: '9101', RLS_CONFIG: join(dir, 'missing.yaml') }), /^RLS_CONFIG: ENOENT/)
  writeFileSync(join(dir, 'c.yaml'), 'domain: a\n')
  t.throws(() => loadConfig({ ...base, RLS_PORT: '9101', RLS_CONFIG: dir }), /RLS_CONFIG: .*c\.yaml: duplicate domain 'a'/)
  t.throws(() => loadConfig({ ...base, RLS_PORT: '9101', RLS_CONFIG: join(dir, 'a.yaml'), WORKERS: '2' }), /WORKERS=2: the rate limit service \(RLS_PORT\) runs in one thread/)
  t.throws(() => loadConfig({ ...base, RLS_PORT: '9101', RLS_CONFIG: join(dir, 'a.yaml'), RATE_LIMIT_ENABLED: 'false' }), /RATE_LIMIT_ENABLED=false leaves RLS_PORT nothing to decide/)
  t.throws(() => loadConfig({ MODE: 'decision' }), /DECISION_PORT or RLS_PORT is required with MODE=decision/)
  t.match(loadConfig({ MODE: 'decision', RLS_PORT: '0', RLS_CONFIG: join(dir, 'a.yaml') }), { mode: 'decision', decision: undefined, rls: { port: 0 } }, 'MODE=decision with only RLS: a pure rate limit service')
})
