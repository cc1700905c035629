import t from 'tap'
import { ManualClock } from '../../src/core/clock.js'
import { loadConfig } from '../../src/config/index.js'
import type { AlgorithmName } from '../../src/core/policy.js'
import { MemoryStore } from '../../src/store/memory.js'
import { RedisStore } from '../../src/store/redis/store.js'
import type { Store } from '../../src/store/types.js'
import { ALIGNED, policy } from '../helpers/store-contract.js'
import { startRedis } from '../helpers/redis.js'

/** Times (ms after a window start) at which a client asking at `times` was admitted. */
async function admittedAt (store: Store, clock: ManualClock, algorithm: AlgorithmName, times: number[]): Promise<number[]> {
  const p = [policy('10/s', 10, algorithm, algorithm)]
  const out: number[] = []
  for (const at of times) {
    clock.set(ALIGNED + at)
    const [d] = await store.consume('client', p, 1)
    if (d!.allowed) out.push(at)
  }
  return out
}

/** The most admissions within any span of `ms`. */
function busiest (admitted: number[], ms: number): number {
  let worst = 0
  for (let i = 0; i < admitted.length; i++) {
    let n = 0
    while (i + n < admitted.length && admitted[i + n]! < admitted[i]! + ms) n++
    worst = Math.max(worst, n)
  }
  return worst
}

const every = (from: number, to: number, step: number) => Array.from({ length: (to - from) / step }, (_, i) => from + i * step)

t.test('boundary burst: a fixed window lets twice the quota through around a boundary; the sliding window does not', async t => {
  const redis = await startRedis(t)
  const settings = loadConfig({ UPSTREAM_URL: 'http://127.0.0.1:1', STORE: 'redis', REDIS_URL: redis.url, REDIS_TIMEOUT_MS: '1000' }).redis
  let n = 0
  const stores: Array<[string, (clock: ManualClock) => Promise<Store>]> = [
    ['memory', async clock => new MemoryStore({ maxKeys: 100, clock, purgeIntervalMs: 0 })],
    ['redis', async clock => {
      const s = new RedisStore({ settings: { ...settings, keyPrefix: `boundary${n++}:` }, decisionClock: clock, clock })
      await s.connect()
      return s
    }]
  ]
  // Quota 10 per 1 s window. [algorithm, admitted in the 200 ms around an edge, most in
  // any 1 s under sustained asking, admitted in those 3 s]. The sliding window's estimate
  // assumes the previous window's requests were spread evenly; when they were bunched,
  // up to quota × (1 + share of the new window elapsed) fits in a span around the edge.
  const expected = [['fixed-window', 20, 20, 40], ['sliding-window', 10, 14, 33]] as const
  for (const [name, make] of stores) {
    for (const [algorithm, aroundEdge, anySecond, total] of expected) {
      const clock = new ManualClock(0)
      const store = await make(clock)
      // Idle, then asking every 10 ms from 100 ms before an edge to 100 ms after it.
      const burst = await admittedAt(store, clock, algorithm, every(10_900, 11_100, 10))
      // Asking every 10 ms for 3 s, from the middle of a window.
      const sustained = await admittedAt(store, clock, algorithm, every(20_500, 23_500, 10))
      await store.close()
      t.equal(burst.length, aroundEdge, `${name}, ${algorithm}: ${burst.length} admitted within 200 ms around an edge`)
      t.equal(busiest(sustained, 1000), anySecond, `${name}, ${algorithm}: at most ${busiest(sustained, 1000)} in any 1 s under sustained asking`)
      t.equal(sustained.length, total, `${name}, ${algorithm}: ${total} admitted over those 3 s (4 windows touched)`)
    }
  }
})
