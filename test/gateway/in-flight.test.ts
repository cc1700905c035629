import t from 'tap'
import { once } from 'node:events'
import { request } from 'undici'
import type { MemoryStore } from '../../src/store/memory.js'
import { rulesFile, startGateway, type TestGateway } from '../helpers/gateway.js'
import { agentFrom, send } from '../helpers/http.js'
import { eventually } from '../helpers/load.js'
import { startHoldingUpstream } from '../helpers/holding-upstream.js'
import { startUpstream } from '../helpers/upstream.js'

const inFlight = (gw: TestGateway, key: string) => (gw.app.store as MemoryStore).inFlightOf(key)
const gauge = async (gw: TestGateway) => (await gw.app.metrics.registry.getSingleMetric('gateway_in_flight_requests')!.get()).values[0]!.value

/** Starts a request that the upstream holds; resolves to its status once answered (or 0 when aborted). */
function start (url: string, from = '127.0.0.2', signal?: AbortSignal): Promise<number> {
  return request(url, { dispatcher: agentFrom(from), signal }).then(async r => { await r.body.text(); return r.statusCode }, () => 0)
}

t.test('N+1 requests at once: N reach the upstream, one gets a 429 that says it is an in-flight limit', async t => {
  const upstream = await startHoldingUpstream(t)
  const token = 'test-admin-token-0123456789'
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, CONCURRENCY_LIMIT: '3', ADMIN_TOKEN: token })
  const held = [1, 2, 3].map(i => start(`${gw.url}/hold/${i}`))
  t.ok(await eventually(() => upstream.held() === 3, 3000), 'three in progress upstream')
  const view = JSON.parse((await send(`${gw.adminUrl}/admin/clients?ip=127.0.0.2`, { headers: { authorization: `Bearer ${token}` } })).body)
  t.same(view.inFlight, [{ limit: 'concurrency', max: 3, inProgress: 3 }], 'the admin client view shows them')
  const refused = await send(`${gw.url}/hold/4`, { from: '127.0.0.2' })
  t.equal(refused.status, 429)
  t.equal(refused.headers['retry-after'], '1')
  t.equal(refused.headers['ratelimit-policy'], '"concurrency";q=3;qu="concurrent-requests"')
  t.match(JSON.parse(refused.body), { status: 429, code: 'GW_CONCURRENCY_LIMITED', policy: 'concurrency', retryAfter: 1, detail: /In-flight limit "concurrency" reached: at most 3 requests in progress/ })
  t.equal(upstream.hits.length, 3, 'the fourth never reached the upstream')
  t.equal((await send(`${gw.url}/ok`, { from: '127.0.0.3' })).status, 200, 'another client has its own slots')
  t.equal(await gauge(gw), 3, 'gateway_in_flight_requests')
  upstream.releaseAll()
  t.same(await Promise.all(held), [200, 200, 200])
  t.ok(await eventually(() => inFlight(gw, 'concurrency|ip:127.0.0.2') === 0, 2000), 'every slot back')
  t.equal((await send(`${gw.url}/ok`, { from: '127.0.0.2' })).status, 200)
  const outcomes = (await gw.app.metrics.requestsTotal.get()).values.find(v => v.labels.outcome === 'concurrency_limited')
  t.equal(outcomes?.value, 1, 'counted as concurrency_limited')
})

t.test('a slot comes back however the request ends: response, client abort, upstream 5xx, reset, timeout', async t => {
  const upstream = await startHoldingUpstream(t)
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, CONCURRENCY_LIMIT: '1', UPSTREAM_TIMEOUT_MS: '300' })
  const key = 'concurrency|ip:127.0.0.2'
  const backToZero = async (how: string) => {
    t.ok(await eventually(() => inFlight(gw, key) === 0, 3000), `${how}: the slot is back`)
    t.equal((await send(`${gw.url}/ok`, { from: '127.0.0.2' })).status, 200, `${how}: the next request passes`)
  }
  t.equal((await send(`${gw.url}/ok`, { from: '127.0.0.2' })).status, 200)
  await backToZero('a response')

  const abort = new AbortController()
  const aborted = start(`${gw.url}/hold/a`, '127.0.0.2', abort.signal)
  t.ok(await eventually(() => upstream.held() === 1, 3000))
  t.equal((await send(`${gw.url}/ok`, { from: '127.0.0.2' })).status, 429, 'held: the one slot is taken')
  abort.abort()
  await aborted
  await backToZero('the client going away')

  t.equal((await send(`${gw.url}/fail`, { from: '127.0.0.2' })).status, 500)
  await backToZero('an upstream 5xx')
  t.equal((await send(`${gw.url}/reset`, { from: '127.0.0.2' })).status, 502)
  await backToZero('an upstream reset')
  t.equal((await send(`${gw.url}/hold/slow`, { from: '127.0.0.2' })).status, 504)
  await backToZero('an upstream timeout')
  t.equal(await gauge(gw), 0)
})

t.test('a request refused by a rate limit takes no slot; one refused for a slot is charged nothing', async t => {
  const upstream = await startHoldingUpstream(t)
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, CONCURRENCY_LIMIT: '1', RATE_LIMIT_RATE: '1/h', RATE_LIMIT_BURST: '2' })
  const first = start(`${gw.url}/hold/1`)
  t.ok(await eventually(() => upstream.held() === 1, 3000))
  const refused = await send(`${gw.url}/ok`, { from: '127.0.0.2' })
  t.equal(refused.status, 429)
  t.equal(JSON.parse(refused.body).code, 'GW_CONCURRENCY_LIMITED')
  upstream.releaseAll()
  await first
  t.ok(await eventually(() => inFlight(gw, 'concurrency|ip:127.0.0.2') === 0, 2000))
  const second = await send(`${gw.url}/ok`, { from: '127.0.0.2' })
  t.equal(second.status, 200, 'the refused request took nothing: the burst of 2 still has this one')
  t.equal(second.headers['x-ratelimit-remaining'], '0')
  const third = await send(`${gw.url}/ok`, { from: '127.0.0.2' })
  t.equal(JSON.parse(third.body).code, 'GW_RATE_LIMITED')
  t.equal(inFlight(gw, 'concurrency|ip:127.0.0.2'), 0, 'refused by the rate limit: no slot taken')
})

t.test('GLOBAL_CONCURRENCY_LIMIT is one count for everyone; a rule\'s concurrency counts per its keyBy', async t => {
  const upstream = await startHoldingUpstream(t)
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, GLOBAL_CONCURRENCY_LIMIT: '2' })
  const held = [start(`${gw.url}/hold/1`, '127.0.0.2'), start(`${gw.url}/hold/2`, '127.0.0.3')]
  t.ok(await eventually(() => upstream.held() === 2, 3000))
  const refused = await send(`${gw.url}/ok`, { from: '127.0.0.4' })
  t.equal(refused.status, 429)
  t.equal(refused.headers['ratelimit-policy'], '"global-concurrency";q=2;qu="concurrent-requests"')
  upstream.releaseAll()
  await Promise.all(held)

  // One rule keyed by a header, with a rate limit of its own (two limits decided at once),
  // one with an in-flight limit only, keyed by IP, and the client's own in-flight limit besides.
  const file = rulesFile(t, [
    { name: 'export', path: '/hold/export', keyBy: 'header:x-user-id', rate: '100/s', concurrency: 1 },
    { name: 'report', path: '/hold/report', keyBy: 'ip', concurrency: 5 }
  ])
  const token = 'test-admin-token-0123456789'
  const gw2 = await startGateway(t, { UPSTREAM_URL: upstream.url, RATE_LIMIT_RULES_FILE: file, CONCURRENCY_LIMIT: '10', ADMIN_TOKEN: token })
  const user = { 'x-user-id': 'u1' }
  const one = request(`${gw2.url}/hold/export/1`, { dispatcher: agentFrom('127.0.0.2'), headers: user }).then(r => r.body.text())
  t.ok(await eventually(() => upstream.held() === 1, 3000))
  const sameUser = await send(`${gw2.url}/hold/export/2`, { from: '127.0.0.3', headers: user })
  t.equal(sameUser.status, 429, 'the same user from another address: the rule\'s slot is the user\'s')
  t.equal(sameUser.headers['ratelimit-policy'], '"export-concurrency";q=1;qu="concurrent-requests"')
  t.equal((await send(`${gw2.url}/ok`, { from: '127.0.0.2', headers: user })).status, 200, 'outside the rule: only the client\'s own')
  const admin = async (query: string) => JSON.parse((await send(`${gw2.adminUrl}/admin/clients?${query}`, { headers: { authorization: `Bearer ${token}` } })).body).inFlight
  t.same(await admin('client=h:x-user-id:u1'), [{ limit: 'concurrency', max: 10, inProgress: 0 }, { limit: 'export-concurrency', max: 1, inProgress: 1 }], 'the user: its export slot in use (report is keyed by IP only)')
  t.same(await admin('ip=127.0.0.2'), [{ limit: 'concurrency', max: 10, inProgress: 1 }, { limit: 'export-concurrency', max: 1, inProgress: 0 }, { limit: 'report-concurrency', max: 5, inProgress: 0 }], 'the address: its own slot in use')
  upstream.releaseAll()
  await one
})

t.test('no count ever goes negative, and all come back, under a random mix of ends', async t => {
  const upstream = await startHoldingUpstream(t)
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, CONCURRENCY_LIMIT: '4', GLOBAL_CONCURRENCY_LIMIT: '6', UPSTREAM_TIMEOUT_MS: '400' })
  // A fixed seed: the same mix on every run.
  let seed = 42
  const random = () => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed / 2 ** 31 }
  const paths = ['/ok', '/fail', '/reset', '/hold/x']
  const pending: Array<Promise<number>> = []
  let negative = false
  for (let i = 0; i < 120; i++) {
    const from = `127.0.0.${2 + Math.floor(random() * 3)}`
    const abort = new AbortController()
    pending.push(start(`${gw.url}${paths[Math.floor(random() * paths.length)]}`, from, abort.signal))
    if (random() < 0.3) setTimeout(() => abort.abort(), Math.floor(random() * 50))
    if (random() < 0.2) upstream.releaseAll()
    for (const c of [2, 3, 4]) if (inFlight(gw, `concurrency|ip:127.0.0.${c}`) < 0) negative = true
    if (inFlight(gw, 'global-concurrency') < 0 || inFlight(gw, 'global-concurrency') > 6) negative = true
    await new Promise(resolve => setImmediate(resolve))
  }
  upstream.releaseAll()
  const codes = await Promise.all(pending)
  t.notOk(negative, 'never below 0, never above the global limit')
  t.ok(codes.every(c => [0, 200, 429, 500, 502, 504].includes(c)), `only expected answers (${[...new Set(codes)].join(', ')})`)
  t.ok(await eventually(() => inFlight(gw, 'global-concurrency') === 0 && [2, 3, 4].every(c => inFlight(gw, `concurrency|ip:127.0.0.${c}`) === 0), 5000), 'every slot back')
  t.equal(await gauge(gw), 0)
})

t.test('with RATE_LIMIT_HEADERS=legacy the in-flight 429 carries no draft field', async t => {
  const upstream = await startHoldingUpstream(t)
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, CONCURRENCY_LIMIT: '1', RATE_LIMIT_HEADERS: 'legacy' })
  const held = start(`${gw.url}/hold/1`)
  t.ok(await eventually(() => upstream.held() === 1, 3000))
  const refused = await send(`${gw.url}/ok`, { from: '127.0.0.2' })
  t.equal(refused.status, 429)
  t.equal(refused.headers['ratelimit-policy'], undefined)
  t.equal(refused.headers['retry-after'], '1')
  upstream.releaseAll()
  await held
})

t.test('the demo upstream\'s /slow answers after the time asked (for the README\'s example)', async t => {
  const { createDemoUpstream } = await import('../../src/demo/upstream.js')
  const server = createDemoUpstream().listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => new Promise(resolve => server.close(resolve)))
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`
  const before = performance.now()
  const slow = await send(`${url}/slow?ms=150`)
  t.ok(performance.now() - before >= 140, 'waited')
  t.same(JSON.parse(slow.body), { message: 'pong', waitedMs: 150 })
  t.same(JSON.parse((await send(`${url}/slow?ms=oops`)).body), { message: 'pong', waitedMs: 0 })
})

t.test('Retry-After of an in-flight refusal: how long requests hold a slot, over the slots (issue 25.16)', async t => {
  const upstream = await startUpstream(t)
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, CONCURRENCY_LIMIT: '1' })
  const first = start(`${gw.url}/slow?ms=1500`)
  t.ok(await eventually(() => inFlight(gw, 'concurrency|ip:127.0.0.2') === 1, 3000))
  const early = await send(`${gw.url}/ok`, { from: '127.0.0.2' })
  t.equal(early.headers['retry-after'], '1', 'before any request finished: 1 s')
  t.equal(await first, 200)
  // That request held the slot for 1.5 s: the next refusal says 2 s, not 1.
  const holding = start(`${gw.url}/slow?ms=1500`)
  t.ok(await eventually(() => inFlight(gw, 'concurrency|ip:127.0.0.2') === 1, 3000))
  const refused = await send(`${gw.url}/ok`, { from: '127.0.0.2' })
  t.equal(refused.status, 429)
  t.equal(refused.headers['retry-after'], '2', 'the average hold, rounded up')
  t.match(JSON.parse(refused.body), { retryAfter: 2, detail: /retry in 2 s/ })
  t.equal(await holding, 200)
})
