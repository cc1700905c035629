/**
 * Limits that see the response (route rules' `count`, `refund` and `costHeader`), on the
 * memory store with the rules of examples/rules.json, against a real upstream that
 * answers with the status and cost each test asks for, and holds requests open.
 */
import t from 'tap'
import { fileURLToPath } from 'node:url'
import { request } from 'undici'
import { ManualClock } from '../../src/core/clock.js'
import { rulesFile, startGateway, type TestGateway } from '../helpers/gateway.js'
import { agentFrom, send } from '../helpers/http.js'
import { eventually } from '../helpers/load.js'
import { startHoldingUpstream } from '../helpers/holding-upstream.js'
import { startUpstream } from '../helpers/upstream.js'

const EXAMPLE = fileURLToPath(new URL('../../../examples/rules.json', import.meta.url))
/** The start of a UTC day: fixed windows begin here, so no test crosses a boundary by accident. */
const DAY = Date.UTC(2026, 10, 30)
/** A client limit that never gets in the way of the rules under test. */
const ROOMY = { RATE_LIMIT_RATE: '1000/s', RATE_LIMIT_BURST: '1000' }

const post = (gw: TestGateway, path: string, from = '127.0.0.2') => send(`${gw.url}${path}`, { method: 'POST', from })

async function counted (gw: TestGateway, name: string, labels: Record<string, string>): Promise<number> {
  const values = (await gw.app.metrics.registry.getSingleMetric(name)!.get()).values
  return values.find(v => Object.entries(labels).every(([k, x]) => v.labels[k] === x))?.value ?? 0
}

t.test('count 401s (the login rule, 5/m): 20 successful logins pass, the 6th failed one in the minute is refused', async t => {
  const upstream = await startHoldingUpstream(t)
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, RATE_LIMIT_RULES_FILE: EXAMPLE, ...ROOMY }, { clock: new ManualClock(DAY) })
  for (let i = 0; i < 20; i++) t.equal((await post(gw, '/login?status=200')).status, 200, `successful login ${i + 1}`)
  for (let i = 0; i < 5; i++) t.equal((await post(gw, '/login?status=401')).status, 401, `failed login ${i + 1}: passed, and charged`)
  const sixth = await post(gw, '/login?status=401')
  t.equal(sixth.status, 429, 'the 6th failed login in the minute is refused')
  t.match(JSON.parse(sixth.body), { policy: 'login' })
  t.equal(upstream.hits.length, 25, 'the refused one never reached the upstream')
  t.equal((await post(gw, '/login?status=401', '127.0.0.3')).status, 401, 'another address has its own count')
  t.equal(await counted(gw, 'gateway_charge_settlements_total', { rule: 'login', kind: 'refund' }), 20, 'each successful login given back')
})

t.test('count, charged up front: the over-refusal is bounded by the requests in flight, and ends with their responses', async t => {
  const upstream = await startHoldingUpstream(t)
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, RATE_LIMIT_RULES_FILE: EXAMPLE, ...ROOMY }, { clock: new ManualClock(DAY) })
  // Three logins in progress: each holds a charge until its response says what it was.
  const held = [1, 2, 3].map(() => request(`${gw.url}/login/hold`, { method: 'POST', dispatcher: agentFrom('127.0.0.2') }).then(async r => { await r.body.text(); return r.statusCode }))
  t.ok(await eventually(() => upstream.held() === 3, 3000), 'three logins held upstream')
  t.equal((await post(gw, '/login?status=401')).status, 401, 'failed login 1')
  t.equal((await post(gw, '/login?status=401')).status, 401, 'failed login 2')
  t.equal((await post(gw, '/login?status=401')).status, 429, 'the 3rd failed login is refused while 3 charges wait for their responses: over-refused by 3, the requests in flight')
  upstream.releaseAll(200)
  t.same(await Promise.all(held), [200, 200, 200])
  // Settled when each response began: the three successful logins are given back.
  for (let i = 3; i <= 5; i++) t.equal((await post(gw, '/login?status=401')).status, 401, `failed login ${i} of 5`)
  t.equal((await post(gw, '/login?status=401')).status, 429, 'and never more than 5 failed ones')
})

t.test('refund 5xx: a client whose requests all fail upstream is never refused by that rule', async t => {
  const upstream = await startHoldingUpstream(t)
  const rules = rulesFile(t, [{ name: 'api', path: '/api', rate: '3/m', refund: { status: ['5xx'] } }])
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, RATE_LIMIT_RULES_FILE: rules, UPSTREAM_TIMEOUT_MS: '300', ...ROOMY }, { clock: new ManualClock(DAY) })
  for (let i = 0; i < 10; i++) t.equal((await send(`${gw.url}/api/x?status=503`, { from: '127.0.0.2' })).status, 503, `upstream 503 #${i + 1}`)
  t.equal((await send(`${gw.url}/api/x?status=500`, { from: '127.0.0.2' })).status, 500)
  t.equal((await send(`${gw.url}/api/reset`, { from: '127.0.0.2' })).status, 502, 'the upstream cut the connection: 502, given back too')
  t.equal((await send(`${gw.url}/api/hold`, { from: '127.0.0.2' })).status, 504, 'the upstream too slow: 504, given back too')
  t.equal(upstream.hits.length, 13, 'every one reached the upstream')
  for (let i = 0; i < 3; i++) t.equal((await send(`${gw.url}/api/x`, { from: '127.0.0.2' })).status, 200, `success ${i + 1} of 3`)
  t.equal((await send(`${gw.url}/api/x`, { from: '127.0.0.2' })).status, 429, 'successes are charged: the 4th is refused')
  t.equal(await counted(gw, 'gateway_charge_settlements_total', { rule: 'api', kind: 'refund' }), 13)
})

t.test('costHeader: an upstream reporting cost 50 drains a 100-per-minute client in 2 requests, and the client never sees the header', async t => {
  const upstream = await startHoldingUpstream(t)
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, RATE_LIMIT_RULES_FILE: EXAMPLE, ...ROOMY }, { clock: new ManualClock(DAY) })
  for (const n of [1, 2]) {
    const r = await post(gw, '/v1/completions?cost=50')
    t.equal(r.status, 200, `request ${n}`)
    t.equal(r.headers['x-request-cost'], undefined, `request ${n}: the cost header is the gateway's, not the client's`)
  }
  const third = await post(gw, '/v1/completions?cost=50')
  t.equal(third.status, 429, 'the quota of 100 is spent after two requests of 50')
  t.match(JSON.parse(third.body), { policy: 'completions' })
  t.equal(upstream.hits.length, 2)
  t.equal(await counted(gw, 'gateway_charge_settlements_total', { rule: 'completions', kind: 'post_charge' }), 2)
  t.match((await post(gw, '/v1/completions?cost=50', '127.0.0.3')).headers['ratelimit'], /^"completions";r=99;/, 'another client: charged 1 up front, as the rule says')
})

t.test('costHeader: absent, negative, non-numeric or absurd values leave the up-front cost standing, and are counted; below the cost, the difference is given back', async t => {
  const upstream = await startHoldingUpstream(t)
  const rules = rulesFile(t, [{ name: 'rows', path: '/rows', algorithm: 'fixed-window', rate: '10/m', cost: 2, exclusive: true, costHeader: 'x-request-cost' }])
  const token = 'test-admin-token-0123456789'
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, RATE_LIMIT_RULES_FILE: rules, ADMIN_TOKEN: token, ...ROOMY }, { clock: new ManualClock(DAY) })
  const get = (query: string) => send(`${gw.url}/rows${query}`, { from: '127.0.0.2' })
  t.equal((await get('')).status, 200, 'no cost header')
  t.equal(await counted(gw, 'gateway_cost_header_ignored_total', { rule: 'rows', reason: 'absent' }), 1, 'absent')
  for (const bad of ['abc', '-5', '1.5', '99999999999']) {
    const r = await get(`?cost=${encodeURIComponent(bad)}`)
    t.equal(r.status, 200, `cost ${bad}: passed`)
    t.equal(r.headers['x-request-cost'], undefined, `cost ${bad}: taken out all the same`)
  }
  t.equal(await counted(gw, 'gateway_cost_header_ignored_total', { rule: 'rows', reason: 'invalid' }), 3, 'abc, -5, 1.5')
  t.equal(await counted(gw, 'gateway_cost_header_ignored_total', { rule: 'rows', reason: 'too_large' }), 1, 'above 1000000')
  // 5 × 2 = 10 charged up front: the quota is spent. A report of 0 gives 2 back.
  t.equal((await get('?cost=0')).status, 429, 'the up-front cost stood for each: 10 of 10 charged')
  const other = (query: string) => send(`${gw.url}/rows${query}`, { from: '127.0.0.3' })
  for (let i = 0; i < 5; i++) t.equal((await other('?cost=0')).status, 200, `reported 0: the 2 paid up front given back (${i + 1})`)
  t.equal(await counted(gw, 'gateway_charge_settlements_total', { rule: 'rows', kind: 'cost_refund' }), 5)
  for (let i = 0; i < 5; i++) t.equal((await other('?cost=2')).status, 200, `reported 2: as paid (${i + 1})`)
  t.equal((await other('?cost=2')).status, 429, 'then the quota of 10 is spent')
  const stats = JSON.parse((await send(`${gw.adminUrl}/admin/stats`, { headers: { authorization: `Bearer ${token}` } })).body)
  t.same(stats.settlements, [
    { rule: 'rows', kind: 'cost_refund', count: 5 },
    { rule: 'rows', kind: 'ignored_absent', count: 1 },
    { rule: 'rows', kind: 'ignored_invalid', count: 3 },
    { rule: 'rows', kind: 'ignored_too_large', count: 1 }
  ], '/admin/stats (and the dashboard) show them per rule')
})

t.test('rules that cannot be settled stop the gateway at start-up, naming the rule', async t => {
  const bad = [
    [{ name: 'a', path: '/a', rate: '1/s', count: { status: [401] }, refund: { status: ['5xx'] } }, /either count .* or refund/],
    [{ name: 'b', path: '/b', count: { status: [401] } }, /count applies to the rule's own limits/],
    [{ name: 'b2', path: '/b', cost: 2, refund: { status: [503] } }, /refund applies to the rule's own limits/],
    [{ name: 'c', path: '/c', rate: '1/s', costHeader: 'RateLimit' }, /costHeader "RateLimit" is a header the gateway or HTTP itself sets/],
    [{ name: 'd', path: '/d', rate: '1/s', refund: { status: [600] } }, /rule 1 \("d"\) refund.status/],
    [{ name: 'e', path: '/e', skip: true, costHeader: 'x-cost' }, /a skip rule charges nothing/]
  ] as const
  for (const [rule, message] of bad) {
    await t.rejects(startGateway(t, { UPSTREAM_URL: 'http://127.0.0.1:1', RATE_LIMIT_RULES_FILE: rulesFile(t, [rule]) }), message, rule.name)
  }
})

t.test('a dry-run limit that refused was never charged: its response gives nothing back', async t => {
  const upstream = await startHoldingUpstream(t)
  const rules = rulesFile(t, [{ name: 'trial', path: '/trial', rate: '1/m', dryRun: true, refund: { status: ['5xx'] } }])
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, RATE_LIMIT_RULES_FILE: rules, ...ROOMY }, { clock: new ManualClock(DAY) })
  t.equal((await send(`${gw.url}/trial`, { from: '127.0.0.2' })).status, 200, 'charged: the 1 of 1/m')
  const over = await send(`${gw.url}/trial?status=503`, { from: '127.0.0.2' })
  t.equal(over.status, 503, 'over the dry-run limit: let through, not charged')
  t.equal(await counted(gw, 'gateway_charge_settlements_total', { rule: 'trial', kind: 'refund' }), 0, 'nothing given back')
  t.match((await send(`${gw.url}/trial`, { from: '127.0.0.2' })).headers['ratelimit'], /"trial";r=0;/, 'the first charge still stands')
})

t.test('the demo upstream answers ?status= and ?cost= on any path (what the README\'s examples use)', async t => {
  const upstream = await startUpstream(t)
  const teapot = await send(`${upstream.url}/anything?status=418`)
  t.same([teapot.status, JSON.parse(teapot.body)], [418, { status: 418 }])
  const costed = await send(`${upstream.url}/ping?cost=7`)
  t.same([costed.status, costed.headers['x-request-cost']], [200, '7'], 'a cost alone: the route answers, with the header')
  t.equal((await send(`${upstream.url}/ping?status=99`)).status, 200, 'not a final status: ignored')
})
