import t from 'tap'
import { once } from 'node:events'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { startGateway } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'
import { eventually, startLoad } from '../helpers/load.js'
import { AdaptiveLimits } from '../../src/control/adaptive.js'
import { captureLogs } from '../helpers/logs.js'

t.test('adaptive limits: the factor steps down while the upstream is slow, and back up once it is fast again', async t => {
  let slowMs = 0
  const upstream = createServer((req, res) => {
    req.resume()
    setTimeout(() => res.end('ok'), slowMs)
  }).listen(0, '127.0.0.1')
  await once(upstream, 'listening')
  t.teardown(() => { upstream.closeAllConnections(); return new Promise(resolve => upstream.close(resolve)) })
  const token = 'test-admin-token-0123456789'
  const gw = await startGateway(t, {
    UPSTREAM_URL: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`, ADMIN_TOKEN: token,
    RATE_LIMIT_RATE: '100000/s', RATE_LIMIT_BURST: '1000000',
    // This test is about the upstream: a busy CI machine's event-loop lag must not decide it.
    ADAPTIVE_LIMITS: 'true', ADAPTIVE_LATENCY_MS: '80', ADAPTIVE_INTERVAL_MS: '200', ADAPTIVE_MIN_FACTOR: '0.25', ADAPTIVE_EVENT_LOOP_DELAY_MS: '5000'
  })
  const factor = () => gw.app.manager.adaptive
  const load = startLoad(`${gw.url}/x`, 8)
  t.teardown(() => load.stop())

  t.ok(await eventually(() => load.stats.sent > 50, 3000))
  // On a loaded machine the first intervals can be slow; healthy ones bring the factor to 1.
  t.ok(await eventually(() => factor() === 1, 5000), 'healthy: factor 1')
  slowMs = 250
  t.ok(await eventually(() => factor() < 1, 3000), `slow upstream: the factor drops (${factor()})`)
  t.ok(await eventually(() => factor() === 0.25, 5000), 'step by step, to the floor')
  const policy = (await send(`${gw.url}/x`, { from: '127.0.0.2' })).headers['ratelimit-policy']
  t.equal(policy, '"default";q=250000;w=10', 'the headers show the scaled limit (25000/s, burst 250000)')
  const metrics = (await send(`${gw.adminUrl}/metrics`, { headers: { authorization: `Bearer ${token}` } })).body
  t.match(metrics, /gateway_limit_factor\{source="adaptive"\} 0\.25/, 'and so do the metrics')
  t.match(JSON.parse((await send(`${gw.adminUrl}/admin/config`, { headers: { authorization: `Bearer ${token}` } })).body), { factor: { adaptive: 0.25, effective: 0.25 } })

  slowMs = 0
  t.ok(await eventually(() => factor() === 1, 8000), 'fast again: back up to 1')
  const stats = await load.stop()
  t.equal(stats.errors, 0)
})

t.test('adaptive limits: requests the upstream does not answer (502) count as failures too', async t => {
  let failing = false
  const upstream = createServer((req, res) => {
    req.resume()
    // Failing: the connection is cut before any answer, which the gateway answers with a 502.
    if (failing) req.socket.destroy()
    else res.end('ok')
  }).listen(0, '127.0.0.1')
  await once(upstream, 'listening')
  t.teardown(() => { upstream.closeAllConnections(); return new Promise(resolve => upstream.close(resolve)) })
  const gw = await startGateway(t, {
    UPSTREAM_URL: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`,
    RATE_LIMIT_RATE: '100000/s', RATE_LIMIT_BURST: '1000000',
    ADAPTIVE_LIMITS: 'true', ADAPTIVE_INTERVAL_MS: '200', ADAPTIVE_MIN_FACTOR: '0.25', ADAPTIVE_EVENT_LOOP_DELAY_MS: '5000'
  })
  const factor = () => gw.app.manager.adaptive
  t.ok(await eventually(async () => (await send(`${gw.url}/x`)).status === 200 && factor() === 1, 5000), 'healthy: factor 1')
  failing = true
  t.equal((await send(`${gw.url}/x`)).status, 502)
  const load = startLoad(`${gw.url}/x`, 4)
  t.teardown(() => load.stop())
  t.ok(await eventually(() => factor() < 1, 5000), `502s: the factor drops (${factor()})`)
  await load.stop()
})

t.test('adaptive limits: the lag sampler sees a blocked event loop (its real timer)', async t => {
  const { logger, lines } = captureLogs()
  const factors: number[] = []
  const a = new AdaptiveLimits({ latencyMs: 100, errorRate: 0.5, eventLoopDelayMs: 50, minFactor: 0.25, intervalMs: 3_600_000 }, f => factors.push(f), logger)
  t.teardown(() => a.close())
  const until = Date.now() + 200
  while (Date.now() < until) { /* block the event loop */ }
  // The sampler's next firing is the one that comes late.
  await new Promise(resolve => setTimeout(resolve, 120))
  a.tick()
  t.same(factors, [0.7], 'a blocked event loop: down a step')
  t.match(lines.at(-1)!.reasons, [/event loop delay \d+ ms > 50 ms/])
})
