import t from 'tap'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { loadConfig, rulesContext } from '../../src/config/index.js'
import { parseRules } from '../../src/config/rules.js'

const BASE = { UPSTREAM_URL: 'http://127.0.0.1:8080' }
const EXAMPLE = fileURLToPath(new URL('../../../examples/rules.json', import.meta.url))
const README = fileURLToPath(new URL('../../../README.md', import.meta.url))
const ctx = rulesContext(loadConfig({ ...BASE, RATE_LIMIT_BURST: '20', RATE_LIMIT_TIERS: 'free=1/s:3', GLOBAL_RATE_LIMIT_RATE: '100/s' }))
const rules = (...r: unknown[]) => JSON.stringify({ rules: r })

// [case, file text, what the error must say (where and what)]
const BAD: Array<[string, string, RegExp]> = [
  ['not JSON', '{ rules: [', /not valid JSON/],
  ['no rules field', '{}', /the file must have required property 'rules'/],
  ['rules not a list', '{"rules": {}}', /^rules must be array/],
  ['a rule without a name', rules({ path: '/a' }), /^rule 1 must have required property 'name'/],
  ['an unknown top-level field', '{"rules": [], "extra": 1}', /unknown field "extra"/],
  ['a rule without a path', rules({ name: 'a', rate: '1/s' }), /rule 1 \("a"\) must have required property 'path'/],
  ['a path not starting with /', rules({ name: 'a', path: 'api', rate: '1/s' }), /rule 1 \("a"\) path must match pattern/],
  ['a misspelt field', rules({ name: 'a', path: '/a', rate: '1/s', brust: 3 }), /rule 1 \("a"\): unknown field "brust"/],
  ['an unknown algorithm', rules({ name: 'a', path: '/a', rate: '1/s', algorithm: 'magic' }), /rule 1 \("a"\) algorithm must be one of token-bucket, sliding-window, fixed-window, leaky-bucket/],
  ['a bad rate', rules({ name: 'a', path: '/a', rate: 'fast' }), /rule 1 \("a"\): limit "a": expected a positive number/],
  ['a fractional window rate', rules({ name: 'a', path: '/a', rate: '0.5/s', algorithm: 'fixed-window' }), /fixed-window counts whole requests/],
  ['cost zero', rules({ name: 'a', path: '/a', cost: 0 }), /rule 1 \("a"\) cost must be >= 1/],
  ['a bad method', rules({ name: 'a', path: '/a', methods: ['GET /'] }), /methods\.0 must match pattern/],
  ['rate and limits both', rules({ name: 'a', path: '/a', rate: '1/s', limits: [{ rate: '1/s' }] }), /either rate .* or limits/],
  ['burst without rate', rules({ name: 'a', path: '/a', burst: 3 }), /burst, algorithm and maxDelayMs belong to a limit/],
  ['skip with a limit', rules({ name: 'a', path: '/a', skip: true, rate: '1/s' }), /a skip rule limits nothing/],
  ['keyBy without own limits', rules({ name: 'a', path: '/a', keyBy: 'ip' }), /keyBy applies to the rule's own limits: add rate, limits or concurrency/],
  ['dryRun without own limits', rules({ name: 'a', path: '/a', dryRun: true, concurrency: 2 }), /dryRun applies to the rule's own limits/],
  ['skip with concurrency', rules({ name: 'a', path: '/a', skip: true, concurrency: 2 }), /a skip rule limits nothing/],
  ['concurrency 0', rules({ name: 'a', path: '/a', concurrency: 0 }), /concurrency/],
  ['a rule\'s in-flight limit named like an earlier limit', rules({ name: 'c', path: '/c', limits: [{ name: 'a-concurrency', rate: '1/s' }] }, { name: 'a', path: '/a', concurrency: 1 }), /"a-concurrency" \(the rule's in-flight limit\) is taken/],
  ['an in-flight limit named like another limit', rules({ name: 'a', path: '/a', concurrency: 1 }, { name: 'c', path: '/c', limits: [{ name: 'a-concurrency', rate: '1/s' }] }), /"a-concurrency" is used by another rule/],
  ['a bad keyBy', rules({ name: 'a', path: '/a', rate: '1/s', keyBy: 'cookie' }), /rule 1 \("a"\): keyBy: unknown identity source "cookie"/],
  ['two rules with one name', rules({ name: 'a', path: '/a' }, { name: 'a', path: '/b' }), /rule 2 \("a"\): the name is used by another rule/],
  ['a limit named like a tier', rules({ name: 'free', path: '/a', rate: '1/s' }), /limit name "free" is taken by a built-in limit, a tier or a tier's quota/],
  ['a limit named like a built-in', rules({ name: 'x', path: '/a', limits: [{ name: 'global', rate: '1/s' }] }), /"global" is taken/],
  ['a limit named like a ban key', rules({ name: 'ban-count', path: '/a', rate: '1/s' }), /"ban-count" is taken/],
  ['two limits with one name', rules({ name: 'a', path: '/a', rate: '1/s' }, { name: 'b', path: '/b', limits: [{ name: 'a', rate: '1/s' }] }), /rule 2 \("b"\): limit name "a" is used by another rule/],
  ['a cost above a tier\'s burst', rules({ name: 'a', path: '/a', cost: 5 }), /cost 5 is more than the capacity of limit "free" \(3\)/],
  ['a cost above the rule\'s own window', rules({ name: 'a', path: '/a', cost: 4, exclusive: true, algorithm: 'fixed-window', rate: '3/m' }), /capacity of limit "a" \(3\)/],
  ['too many limits', rules({ name: 'a', path: '/a', limits: Array.from({ length: 9 }, () => ({ rate: '1/s' })) }), /limits must NOT have more than 8 items/]
]

t.test('a bad rules file is refused, saying which rule and what is wrong', async t => {
  for (const [name, text, message] of BAD) t.throws(() => parseRules(text, ctx), { message }, name)
})

t.test('at start-up a bad rules file stops the gateway, naming RATE_LIMIT_RULES_FILE', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'gw-rules-'))
  const file = join(dir, 'rules.json')
  writeFileSync(file, rules({ name: 'a', path: '/a', rate: 'fast' }))
  t.throws(() => loadConfig({ ...BASE, RATE_LIMIT_RULES_FILE: file }), { code: 'GW_CONFIG_INVALID', message: /^RATE_LIMIT_RULES_FILE: rule 1 \("a"\): limit "a": expected/ })
  t.throws(() => loadConfig({ ...BASE, RATE_LIMIT_RULES_FILE: join(dir, 'missing.json') }), { message: /RATE_LIMIT_RULES_FILE: cannot read ".*missing.json": ENOENT/ })
})

t.test('a skip rule, an exclusive rule, a cost with an exclusive rule under the tier burst', async t => {
  const parsed = parseRules(rules(
    { name: 'h', path: '/Health/../healthz', skip: true },
    { name: 'big', path: '/big', cost: 50, exclusive: true, rate: '100/s' },
    { name: 'one', path: '/one', limits: [{ rate: '1/s' }] },
    { name: 'two', path: '/two', limits: [{ rate: '1/s' }, { rate: '10/m' }] }
  ), ctx)
  t.match(parsed[0], { name: 'h', path: '/healthz', skip: true, limits: [] }, 'the path is stored normalised')
  t.match(parsed[1], { exclusive: true, cost: 50, limits: [{ name: 'big', burst: 100, algorithm: 'token-bucket' }] }, 'a bucket without a burst holds one period')
  t.match(parsed[2], { limits: [{ name: 'one' }] }, 'a single unnamed limit takes the rule\'s name')
  t.match(parsed[3], { limits: [{ name: 'two-1' }, { name: 'two-2' }] }, 'several are numbered')
})

t.test('the README\'s rules example is examples/rules.json, and it loads', async t => {
  const text = readFileSync(EXAMPLE, 'utf8')
  t.ok(readFileSync(README, 'utf8').includes('```json\n' + text + '```'), 'the README shows the file verbatim')
  const config = loadConfig({ ...BASE, RATE_LIMIT_RULES_FILE: EXAMPLE })
  t.same(config.rules.map(r => r.name), ['health', 'login', 'search', 'export', 'upload', 'completions', 'reports-v2'])
  t.match(config.rules[1], { count: [401, 403], refund: undefined, costHeader: undefined }, 'login counts failed logins only')
  t.same([...config.rules[1]!.refundStatuses!].filter(s => s >= 400 && s < 410), [400, 402, 404, 405, 406, 407, 408, 409], 'every status but 401 and 403 is given back')
  t.same([...config.rules[3]!.refundStatuses!].sort((a, b) => a - b), [429, ...Array.from({ length: 100 }, (_, i) => 500 + i)], 'export: 5xx and 429 given back')
  t.match(config.rules[5], { costHeader: 'x-request-cost', refundStatuses: undefined })
  t.match(config.rules[3], { path: '/export/', keyBy: [{ kind: 'header', name: 'x-user-id' }, { kind: 'api-key' }, { kind: 'ip' }], limits: [{ name: 'export-burst', burst: 2 }, { name: 'export-daily', algorithm: 'fixed-window', burst: 100 }] })
  t.same(config.rules[2]!.methods, ['GET', 'POST', 'HEAD'], 'GET brings HEAD')
  t.match(config.rules[4], { methods: ['PUT', 'POST'], exclusive: true, limits: [{ algorithm: 'leaky-bucket', maxDelayMs: 2000, burst: 1 }] })
})

t.test('a rule\'s in-flight limit cannot take a tier\'s name (on Redis they would share a key)', async t => {
  const withTier = rulesContext(loadConfig({ ...BASE, RATE_LIMIT_TIERS: 'x-concurrency=1/s:3' }))
  t.throws(() => parseRules(rules({ name: 'x', path: '/x', concurrency: 2 }), withTier), /"x-concurrency" \(the rule's in-flight limit\) is taken/)
})
