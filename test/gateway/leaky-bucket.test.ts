import t from 'tap'
import { once } from 'node:events'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Agent, request } from 'undici'
import { startGateway } from '../helpers/gateway.js'
import { startUpstream } from '../helpers/upstream.js'

t.test('leaky bucket: requests over the rate reach the upstream spaced at the leak rate; past the maximum delay they are refused', async t => {
  // An upstream that notes when each request arrives.
  const arrivals: number[] = []
  const upstream = createServer((req, res) => {
    arrivals.push(performance.now())
    req.resume()
    res.end('ok')
  }).listen(0, '127.0.0.1')
  await once(upstream, 'listening')
  t.teardown(() => new Promise(resolve => upstream.close(resolve)))
  const gw = await startGateway(t, {
    UPSTREAM_URL: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`,
    RATE_LIMIT_ALGORITHM: 'leaky-bucket', RATE_LIMIT_RATE: '20/s', RATE_LIMIT_BURST: '1', RATE_LIMIT_MAX_DELAY_MS: '1000'
  })

  // Open the gateway's upstream connection first (another client: its own bucket), so
  // the first measured request does not also carry a TCP handshake.
  const warm = await request(`${gw.url}/warm-up`, { dispatcher: new Agent({ localAddress: '127.0.0.2' }) })
  await warm.body.dump()
  arrivals.length = 0

  // 30 requests at once from one client: at 20/s with 1 s of queue, about 21 fit.
  const agent = new Agent({ connections: 30 })
  t.teardown(() => agent.close())
  const replies = await Promise.all(Array.from({ length: 30 }, async () => {
    const res = await request(`${gw.url}/x`, { dispatcher: agent })
    await res.body.dump()
    return { status: res.statusCode, retryAfter: res.headers['retry-after'] }
  }))
  const admitted = replies.filter(r => r.status === 200).length
  const refused = replies.filter(r => r.status === 429)
  t.equal(admitted + refused.length, 30, 'every request was answered, 200 or 429')
  // 21 when all 30 reach the gateway at once; each 50 ms their arrival spreads over on a
  // loaded machine (30 connections opened at once) leaves room for one more (24 seen in
  // CI). Without the 1 s cap on the queue all 30 would be.
  t.ok(admitted >= 21 && admitted <= 26, `about 1 + 1000 ms × 20/s were admitted (${admitted})`)
  t.ok(refused.every(r => r.retryAfter === '1'), 'the refused are told to retry in 1 s')
  t.equal(arrivals.length, admitted, 'only the admitted reached the upstream')

  const gaps = arrivals.slice(1).map((a, i) => a - arrivals[i]!)
  const sorted = [...gaps].sort((a, b) => a - b)
  const median = sorted[Math.floor(sorted.length / 2)]!
  t.ok(median >= 45 && median <= 55, `the upstream saw one request every ~50 ms (median gap ${median.toFixed(1)} ms)`)
  // Never more than the leak rate lets through: at most 21 in any second, and 2 more for
  // timers a loaded machine fires late, which bunch a held request with the next (a gap of
  // 1 ms seen in CI). Two released per turn would be all of them within 0.6 s.
  const mostInASecond = Math.max(...arrivals.map(a => arrivals.filter(b => b >= a && b < a + 1000).length))
  t.ok(mostInASecond <= 23, `never more than the leak rate (${mostInASecond} in the busiest second)`)
  const span = arrivals[arrivals.length - 1]! - arrivals[0]!
  t.ok(Math.abs(span - (admitted - 1) * 50) <= 40, `spread over ${span.toFixed(0)} ms for ${admitted} requests (${(admitted - 1) * 50} at exactly 20/s)`)
})

t.test('leaky bucket in dry run: nothing is held back', async t => {
  const upstream = createServer((req, res) => { req.resume(); res.end('ok') }).listen(0, '127.0.0.1')
  await once(upstream, 'listening')
  t.teardown(() => new Promise(resolve => upstream.close(resolve)))
  const gw = await startGateway(t, {
    UPSTREAM_URL: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`, RATE_LIMIT_DRY_RUN: 'true',
    RATE_LIMIT_ALGORITHM: 'leaky-bucket', RATE_LIMIT_RATE: '1/s', RATE_LIMIT_BURST: '1', RATE_LIMIT_MAX_DELAY_MS: '5000'
  })
  const started = performance.now()
  for (let i = 0; i < 3; i++) {
    const res = await request(`${gw.url}/x`)
    await res.body.dump()
    t.equal(res.statusCode, 200)
  }
  const took = performance.now() - started
  t.ok(took < 500, `three requests at 1/s answered in ${took.toFixed(0)} ms: a dry run reports the delay, never applies it`)
})

t.test('leaky bucket: a held request whose client goes away never reaches the upstream', async t => {
  let arrivals = 0
  const upstream = createServer((req, res) => { arrivals++; req.resume(); res.end('ok') }).listen(0, '127.0.0.1')
  await once(upstream, 'listening')
  t.teardown(() => new Promise(resolve => upstream.close(resolve)))
  const gw = await startGateway(t, {
    UPSTREAM_URL: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`,
    RATE_LIMIT_ALGORITHM: 'leaky-bucket', RATE_LIMIT_RATE: '2/s', RATE_LIMIT_BURST: '1', RATE_LIMIT_MAX_DELAY_MS: '2000'
  })
  const first = await request(`${gw.url}/x`)
  await first.body.dump()
  t.equal(arrivals, 1)
  // The second is held for ~500 ms; its client gives up after 100 ms.
  const gaveUp = request(`${gw.url}/x`, { signal: AbortSignal.timeout(100) }).then(() => 'answered', () => 'aborted')
  t.equal(await gaveUp, 'aborted')
  await new Promise(resolve => setTimeout(resolve, 700))
  t.equal(arrivals, 1, 'the upstream never saw the abandoned request')
  const third = await request(`${gw.url}/x`)
  await third.body.dump()
  t.equal(third.statusCode, 200, 'the gateway goes on serving')
  t.equal(arrivals, 2)
})

t.test('a delayed request is reported once, when decided: counted while it is still held (issue 27: one report path)', async t => {
  const upstream = await startUpstream(t)
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, RATE_LIMIT_ALGORITHM: 'leaky-bucket', RATE_LIMIT_RATE: '1/s', RATE_LIMIT_BURST: '1', RATE_LIMIT_MAX_DELAY_MS: '2000' })
  const delayed = async () => (await gw.app.metrics.registry.getSingleMetric('gateway_requests_total')!.get()).values.find(v => v.labels.outcome === 'delayed')?.value ?? 0
  const first = await request(`${gw.url}/ping`)
  await first.body.dump()
  const held = request(`${gw.url}/ping`).then(async r => { await r.body.dump(); return performance.now() })
  const asked = performance.now()
  let countedAt = 0
  while (countedAt === 0 && performance.now() - asked < 5000) {
    if (await delayed() === 1) countedAt = performance.now()
    else await new Promise(resolve => setTimeout(resolve, 20))
  }
  const answeredAt = await held
  t.ok(countedAt > 0, 'the delayed request is counted')
  t.ok(countedAt < answeredAt - 300, `counted ${Math.round(countedAt - asked)} ms after it was asked, before its answer at ${Math.round(answeredAt - asked)} ms`)
  t.equal(await delayed(), 1, 'and once only')
})
