/**
 * Memory per tracked client: the memory store (the gateway's own code path, consume())
 * fed N distinct client addresses; prints JSON with the cost per client.
 * `node --expose-gc dist/bench/memory-per-client.js N`
 *
 * Per client is the growth from N/10 clients to N, divided by the 0.9 N clients added:
 * what one more tracked client costs. Measured from an empty process instead, the first
 * clients also pay for fixed costs that do not grow with N, chiefly V8's young generation
 * (~32 MiB once the process allocates steadily); `fromEmpty` reports that figure too.
 * Heap is V8's heap plus the store's typed arrays (which live outside it).
 */
import { MemoryStore } from '../src/store/memory.js'
import { makePolicy } from '../src/core/policy.js'
import { parseRate } from '../src/core/rate.js'
import { systemClock } from '../src/core/clock.js'

const n = Number(process.argv[2])
const warm = Math.floor(n / 10)
const policies = [makePolicy('default', { algorithm: 'token-bucket', rate: parseRate('10/s'), burst: 20, maxDelayMs: 0, dryRun: false })]
const gc = (globalThis as { gc?: () => void }).gc ?? (() => {})
const measure = () => {
  gc()
  gc()
  const m = process.memoryUsage()
  return { rss: m.rss, heap: m.heapUsed + m.arrayBuffers }
}
const empty = measure()
const store = new MemoryStore({ maxKeys: n, clock: systemClock, purgeIntervalMs: 0 })
const feed = (from: number, to: number) => {
  for (let i = from; i < to; i++) store.consume(`ip:10.${(i >>> 16) & 255}.${(i >>> 8) & 255}.${i & 255}`, policies, 1)
}
feed(0, warm)
const before = measure()
feed(warm, n)
const after = measure()
const added = n - warm
process.stdout.write(JSON.stringify({
  clients: store.size(),
  rssBytes: (after.rss - before.rss) / added,
  heapBytes: (after.heap - before.heap) / added,
  fromEmpty: { rssBytes: (after.rss - empty.rss) / n, heapBytes: (after.heap - empty.heap) / n }
}) + '\n')
