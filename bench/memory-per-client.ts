/**
 * Memory per tracked client: the memory store (the gateway's own code path, consume())
 * fed N distinct client addresses; prints {clients, rssBytes, heapBytes} as JSON.
 * `node --expose-gc dist/bench/memory-per-client.js N`
 */
import { MemoryStore } from '../src/store/memory.js'
import { makePolicy } from '../src/limiter/policy.js'
import { parseRate } from '../src/config/parse.js'
import { systemClock } from '../src/clock.js'

const n = Number(process.argv[2])
const policies = [makePolicy('default', { algorithm: 'token-bucket', rate: parseRate('10/s'), burst: 20, maxDelayMs: 0, dryRun: false })]
const gc = (globalThis as { gc?: () => void }).gc ?? (() => {})
gc()
const before = process.memoryUsage()
const store = new MemoryStore({ maxKeys: n, clock: systemClock, purgeIntervalMs: 0 })
for (let i = 0; i < n; i++) store.consume(`ip:10.${(i >>> 16) & 255}.${(i >>> 8) & 255}.${i & 255}`, policies, 1)
gc()
const after = process.memoryUsage()
process.stdout.write(JSON.stringify({ clients: store.size(), rssBytes: (after.rss - before.rss) / n, heapBytes: (after.heapUsed - before.heapUsed) / n }) + '\n')
