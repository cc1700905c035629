import t from 'tap'
import { startUpstream } from '../helpers/upstream.js'
import { startGateway } from '../helpers/gateway.js'
import { startRedis } from '../helpers/redis.js'
import { send } from '../helpers/http.js'
import type { Teardown } from '../helpers/tap.js'
import { eventually, sleep, startLoad } from '../helpers/load.js'

const unhandled: unknown[] = []
process.on('unhandledRejection', err => { unhandled.push(err) })

const TIMEOUT_MS = 50
/** The most a request may take while Redis dies, stalls or comes back (timeout + slack for a busy test machine). */
const LATENCY_BOUND_MS = 1000

async function setup (t: Teardown, env: Record<string, string> = {}) {
  const redis = await startRedis(t)
  const upstream = await startUpstream(t)
  const gw = await startGateway(t, {
    UPSTREAM_URL: upstream.url, STORE: 'redis', REDIS_URL: redis.url, REDIS_TIMEOUT_MS: String(TIMEOUT_MS),
    REDIS_PROBE_INTERVAL_MS: '100', RATE_LIMIT_RATE: '100000/s', RATE_LIMIT_BURST: '100000', ...env
  })
  const readyz = async () => JSON.parse((await send(`${gw.adminUrl}/readyz`)).body) as { status: string, store: { mode: string } }
  return { redis, upstream, gw, readyz }
}

t.test('kill -9, restart: answers keep coming within the bound, local fallback, automatic recovery', async t => {
  const { redis, gw, readyz } = await setup(t)
  const load = startLoad(`${gw.url}/ping`, 20)
  await sleep(200)
  await redis.kill()
  t.ok(await eventually(() => gw.app.store!.mode() === 'local-fallback', 2000), 'switched to the local fallback')
  t.match(await readyz(), { status: 'ready', store: { mode: 'local-fallback' } }, '/readyz shows the mode')
  await sleep(300)
  await redis.restart()
  t.ok(await eventually(() => gw.app.store!.mode() === 'redis', 3000), 'recovered by itself')
  await sleep(200)
  const stats = await load.stop()
  t.equal(stats.errors, 0, 'no request failed')
  t.same([...stats.byStatus.keys()], [200], `all ${stats.sent} answers were 200 (no 429, no 5xx)`)
  t.ok(stats.maxLatencyMs < LATENCY_BOUND_MS, `worst latency ${stats.maxLatencyMs.toFixed(0)} ms`)
  const decisions = /cmdstat_evalsha?:calls=(\d+)/.exec(await redis.admin.info('commandstats'))
  t.ok(Number(decisions?.[1]) > 0, `the restarted Redis takes decisions again (${decisions?.[1]} so far)`)
  t.same(unhandled, [], 'no unhandled rejection')
})

t.test('SIGSTOP: a stalled Redis costs at most the command timeout, then the circuit opens', async t => {
  // A long timeout here, so that paying it (≥ 500 ms) and not paying it (a few ms, tens on
  // a busy CI machine) cannot be confused.
  const stalledTimeoutMs = 500
  const { redis, gw, readyz } = await setup(t, { REDIS_TIMEOUT_MS: String(stalledTimeoutMs) })
  const load = startLoad(`${gw.url}/ping`, 20)
  await sleep(200)
  redis.pause()
  t.ok(await eventually(() => gw.app.store!.mode() === 'local-fallback', 2000), 'switched to the local fallback')
  // With the circuit open, requests no longer wait for Redis at all: the typical request
  // (the median of 7, so one slow scheduling on a busy machine does not decide) takes
  // well under the command timeout it would otherwise pay.
  const took: number[] = []
  for (let i = 0; i < 7; i++) {
    const before = performance.now()
    t.equal((await send(`${gw.url}/ping`)).status, 200)
    took.push(performance.now() - before)
  }
  const median = took.sort((a, b) => a - b)[3]!
  t.ok(median < stalledTimeoutMs / 2, `during the outage a request takes ${median.toFixed(1)} ms (median), not the ${stalledTimeoutMs} ms timeout`)
  await sleep(300)
  redis.resume()
  t.ok(await eventually(async () => (await readyz()).store.mode === 'redis', 3000), 'recovered by itself')
  const stats = await load.stop()
  t.equal(stats.errors, 0)
  t.same([...stats.byStatus.keys()], [200], `all ${stats.sent} answers were 200`)
  t.ok(stats.maxLatencyMs < stalledTimeoutMs + LATENCY_BOUND_MS, `worst latency ${stats.maxLatencyMs.toFixed(0)} ms: the timeout at most, plus slack`)
  t.same(unhandled, [])
})

t.test('SIGSTOP: a request asking while a stalled command is in flight pays the timeout once, not twice', async t => {
  // ioredis's auto-pipelining sends one pipeline per connection at a time: B, asking 20 ms
  // after A, would wait for A's command to time out before its own was even sent (about
  // 2 × the timeout). Two failures stay under the 3 that open the circuit, so both ask Redis.
  const timeoutMs = 1000
  const { redis, gw } = await setup(t, { REDIS_TIMEOUT_MS: String(timeoutMs) })
  t.equal((await send(`${gw.url}/ping`)).status, 200, 'Redis answers (the script is loaded)')
  redis.pause()
  const timed = async (from: string) => {
    const before = performance.now()
    const { status } = await send(`${gw.url}/ping`, { from })
    return { status, ms: performance.now() - before }
  }
  const a = timed('127.0.0.2')
  await sleep(20)
  const b = await timed('127.0.0.3')
  t.equal((await a).status, 200, `A answered by the local fallback after ${(await a).ms.toFixed(0)} ms`)
  t.equal(b.status, 200)
  t.ok(b.ms >= timeoutMs * 0.9, `B waited for its own command's timeout (${b.ms.toFixed(0)} ms)`)
  t.ok(b.ms < timeoutMs * 1.5, `and only that: ${b.ms.toFixed(0)} ms for a ${timeoutMs} ms timeout`)
  redis.resume()
})

t.test('SCRIPT FLUSH: the script is reloaded transparently', async t => {
  const { redis, gw } = await setup(t)
  const load = startLoad(`${gw.url}/ping`, 10)
  await sleep(100)
  for (let i = 0; i < 5; i++) {
    await redis.admin.script('FLUSH')
    await sleep(50)
  }
  const stats = await load.stop()
  t.same([...stats.byStatus.keys()], [200], `all ${stats.sent} answers were 200`)
  t.equal(gw.app.store!.mode(), 'redis', 'never fell back')
  t.equal(stats.errors, 0)
})

t.test('the local fallback still limits: an abusive client stays limited during the outage', async t => {
  const { redis, gw } = await setup(t, { RATE_LIMIT_RATE: '1/h', RATE_LIMIT_BURST: '2' })
  await redis.kill()
  const statuses = []
  for (let i = 0; i < 6; i++) statuses.push((await send(`${gw.url}/ping`)).status)
  t.same(statuses, [200, 200, 429, 429, 429, 429], 'the local limiter applies the same limit on this instance')
  t.equal(gw.app.store!.size(), 1, 'the local limiter tracks the client')
})

t.test('STORE_FAILURE_MODE=open admits everything while Redis is down', async t => {
  const { redis, gw, readyz } = await setup(t, { STORE_FAILURE_MODE: 'open', RATE_LIMIT_RATE: '1/h', RATE_LIMIT_BURST: '1' })
  t.equal((await send(`${gw.url}/ping`)).status, 200)
  t.equal((await send(`${gw.url}/ping`)).status, 429, 'limited while Redis is up')
  await redis.kill()
  const statuses = []
  for (let i = 0; i < 6; i++) statuses.push((await send(`${gw.url}/ping`, { from: '127.0.0.2' })).status)
  t.same(statuses, [200, 200, 200, 200, 200, 200], 'a client Redis knows nothing about is admitted')
  t.match(await readyz(), { status: 'ready', store: { mode: 'fail-open' } })
  // What Redis already decided still holds: that client was refused until an instant
  // that has not come, and a rejection never moves a bucket, so it stays refused.
  t.equal((await send(`${gw.url}/ping`)).status, 429, 'a client already known to be over its limit stays limited')
})

t.test('STORE_FAILURE_MODE=closed answers 503, never 429, and readiness fails', async t => {
  const { redis, gw, readyz, upstream } = await setup(t, { STORE_FAILURE_MODE: 'closed' })
  t.equal((await send(`${gw.url}/ping`)).status, 200)
  await redis.kill()
  const replies = []
  for (let i = 0; i < 6; i++) replies.push(await send(`${gw.url}/ping`))
  t.same(replies.map(r => r.status), [503, 503, 503, 503, 503, 503])
  t.match(JSON.parse(replies[0]!.body), { code: 'GW_STORE_UNAVAILABLE' })
  t.equal(upstream.hits.get('/ping'), 1, 'nothing reached the upstream meanwhile')
  t.match(await readyz(), { status: 'not-ready', store: { mode: 'fail-closed', ready: false } })
  await redis.restart()
  t.ok(await eventually(async () => (await send(`${gw.url}/ping`)).status === 200, 3000), 'serves again after recovery')
})
