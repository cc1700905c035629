/**
 * Slow clients: headers trickled (slowloris) and bodies trickled are cut off by the
 * header and request timeouts, while other clients stay fast.
 */
import t from 'tap'
import { startUpstream } from '../helpers/upstream.js'
import { spawnGateway } from '../helpers/process.js'
import { send } from '../helpers/http.js'
import { Tally, writeFigures, WORKERS_ENV } from './harness.js'
import { rawExchange } from '../helpers/http.js'

t.test('slowloris and slow bodies are cut off by the timeouts; other clients stay fast meanwhile', async t => {
  const upstream = await startUpstream(t)
  const gw = await spawnGateway(t, { ...WORKERS_ENV,
    UPSTREAM_URL: upstream.url, RATE_LIMIT_RATE: '100000/s', RATE_LIMIT_BURST: '100000',
    REQUEST_HEADERS_TIMEOUT_MS: '1000', REQUEST_TIMEOUT_MS: '2000'
  })
  const tally = new Tally()
  const started = performance.now()
  // 40 connections trickling a header line every 300 ms for 6 s; 20 trickling a body.
  const trickle = (head: string, line: () => string, n: number) => [head, ...Array.from({ length: n }, line)]
  const slowloris = Array.from({ length: 40 }, () => rawExchange(gw.port, trickle('GET /ping HTTP/1.1\r\nHost: x\r\n', () => 'X-Slow: 1\r\n', 20), { gapMs: 300, waitMs: 8000 }))
  const slowBodies = Array.from({ length: 20 }, () => rawExchange(gw.port, trickle('POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n', () => 'aaaaaaaaaa', 30), { gapMs: 200, waitMs: 8000 }))
  // Meanwhile, a well-behaved client.
  const latencies: number[] = []
  let failures = 0
  const normal = (async () => {
    while (performance.now() - started < 5000) {
      const t0 = performance.now()
      try {
        const r = await send(`${gw.url}/ping`, { from: '127.0.0.2' })
        if (r.status !== 200) failures++
      } catch {
        failures++
      }
      latencies.push(performance.now() - t0)
      await new Promise(resolve => setTimeout(resolve, 20))
    }
  })()

  const cut = await Promise.all([...slowloris, ...slowBodies].map(async (p, i) => {
    const a = await p
    return { kind: i < 40 ? 'headers' : 'body', status: a.status, closed: a.closed, at: performance.now() - started }
  }))
  await normal
  for (const c of cut) {
    tally.sent++
    tally.record(c.status ?? 'closed')
  }
  const headersCut = cut.filter(c => c.kind === 'headers')
  const bodiesCut = cut.filter(c => c.kind === 'body')
  t.ok(headersCut.every(c => c.closed && c.at < 3500), `every slowloris connection closed within ${Math.max(...headersCut.map(c => c.at)).toFixed(0)} ms (timeout 1000 ms, checked every 1000 ms)`)
  t.ok(headersCut.every(c => c.status === 408), 'with 408 Request Timeout')
  t.ok(bodiesCut.every(c => c.closed && c.at < 4500), `every slow body closed within ${Math.max(...bodiesCut.map(c => c.at)).toFixed(0)} ms (request timeout 2000 ms)`)
  t.ok(bodiesCut.every(c => c.status === 408 || c.status === undefined), 'with 408, or closed')
  const sorted = [...latencies].sort((a, b) => a - b)
  const p99 = sorted[Math.floor(sorted.length * 0.99)]!
  t.equal(failures, 0, `the well-behaved client: ${latencies.length} requests, none failed`)
  t.ok(p99 < 200, `and stayed fast: p99 ${p99.toFixed(1)} ms`)
  t.equal(upstream.hits.get('/ping') ?? 0, latencies.length, 'no trickled request reached the upstream complete')
  t.equal(gw.child.exitCode, null, 'no crash')
  const figures = writeFigures({
    scenario: 'slow-clients', sent: tally.sent + latencies.length, answered: { ...tally.answered, '2xx': (tally.answered['2xx'] ?? 0) + latencies.length - failures },
    lost: failures, upstream: upstream.total(), smuggled: (upstream.hits.get('/ping') ?? 0) - latencies.length, crashes: gw.child.exitCode === null ? 0 : 1, rssBytes: gw.rss(),
    notes: { slowloris: 40, slowBodies: 20, wellBehavedRequests: latencies.length, wellBehavedP99Ms: +p99.toFixed(1), slowestCutMs: +Math.max(...cut.map(c => c.at)).toFixed(0) }
  })
  t.equal(figures.lost, 0)
  t.equal(figures.smuggled, 0)
})
