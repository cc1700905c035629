import t from 'tap'
import { request, Agent } from 'undici'
import type { Clock } from '../../src/core/clock.js'
import { startUpstream } from '../helpers/upstream.js'
import { startGateway, type TestGateway } from '../helpers/gateway.js'
import { startRedis } from '../helpers/redis.js'

const RATE = 20 // per second
const BURST = 10
const DURATION_MS = 1500

interface Run { admitted: number, limited: number, other: number, outer: number, inner: number }

/** `concurrency` loops send one client's requests alternately to the gateways for DURATION_MS. */
async function hammer (gateways: TestGateway[], concurrency: number, countUpstream: () => number): Promise<Run> {
  const agent = new Agent({ connections: concurrency })
  const before = countUpstream()
  let limited = 0
  let other = 0
  let next = 0
  let firstResponse = Infinity
  let lastSend = 0
  const started = performance.now()
  const end = started + DURATION_MS
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < end) {
      const gw = gateways[next++ % gateways.length]!
      lastSend = performance.now()
      const res = await request(`${gw.url}/ping`, { dispatcher: agent })
      await res.body.dump()
      firstResponse = Math.min(firstResponse, performance.now())
      if (res.statusCode === 429) limited++
      else if (res.statusCode !== 200) other++
    }
  }))
  const outer = performance.now() - started
  await agent.close()
  return { admitted: countUpstream() - before, limited, other, outer, inner: lastSend - firstResponse }
}

const skewed = (offsetMs: number): Clock => ({ now: () => Date.now() + offsetMs })

for (const [name, concurrency, skewMs] of [
  ['concurrency 1', 1, 0],
  ['concurrency 50', 50, 0],
  ['concurrency 200', 200, 0],
  ['concurrency 50, one instance\'s clock 30 s ahead', 50, 30_000]
] as const) {
  t.test(`two instances, one Redis, one client, ${name}: one limit`, async t => {
    const redis = await startRedis(t)
    const upstream = await startUpstream(t)
    const env = { UPSTREAM_URL: upstream.url, STORE: 'redis', REDIS_URL: redis.url, RATE_LIMIT_RATE: `${RATE}/s`, RATE_LIMIT_BURST: String(BURST), REDIS_TIMEOUT_MS: '1000' }
    const a = await startGateway(t, env)
    const b = await startGateway(t, env, skewMs ? { clock: skewed(skewMs) } : {})
    const run = await hammer([a, b], concurrency, () => upstream.hits.get('/ping') ?? 0)
    const upper = BURST + RATE * run.outer / 1000 + 1
    const lower = BURST + RATE * run.inner / 1000 - 1
    t.equal(run.other, 0, 'every answer is 200 or 429')
    t.ok(run.limited > 0, `the client was limited (${run.limited} times)`)
    t.ok(run.admitted <= upper, `admitted ${run.admitted} ≤ ${upper.toFixed(1)} (B + r×${(run.outer / 1000).toFixed(3)} s + 1)`)
    t.ok(run.admitted >= lower, `admitted ${run.admitted} ≥ ${lower.toFixed(1)} (B + r×${(run.inner / 1000).toFixed(3)} s − 1)`)
    t.equal(a.app.store!.mode(), 'redis')
    t.equal(b.app.store!.mode(), 'redis')
  })
}
