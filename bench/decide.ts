/**
 * The cost of one decision in the memory store, per algorithm, without any HTTP: one busy
 * client, and 100,000 clients in turn; on this thread's slab, and on shared zones (what
 * WORKERS > 1 decides against), one thread. Prints JSON lines; bench/algorithms.ts
 * reports them.
 */
import { ManualClock } from '../src/core/clock.js'
import { parseRate } from '../src/core/rate.js'
import { ALGORITHMS } from '../src/core/policy.js'
import { makePolicy } from '../src/core/policy.js'
import { MemoryStore } from '../src/store/memory.js'
import { sharedTables } from '../src/store/shared/tables.js'

const CALLS = Number(process.argv[2] ?? 2_000_000)
const CLIENTS = 100_000

/** ns per decision for one busy client and for CLIENTS in turn. */
async function measure (algorithm: typeof ALGORITHMS[number], shared: boolean): Promise<{ one: number, many: number }> {
  const policies = [makePolicy('default', { algorithm, rate: parseRate('100000/s'), burst: 1_000_000_000, maxDelayMs: 0, dryRun: false })]
  const clock = new ManualClock(1_795_000_000_000)
  const store = new MemoryStore({ maxKeys: 500_000, clock, purgeIntervalMs: 0, ...(shared ? { shared: sharedTables(500_000) } : {}) })
  const names = Array.from({ length: CLIENTS }, (_, i) => `ip:10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`)
  const run = (client: (i: number) => string): number => {
    const started = process.hrtime.bigint()
    for (let i = 0; i < CALLS; i++) {
      // 20 µs per decision (50,000/s, half the quota): time moves, as in production.
      clock.advance(0.02)
      if (!store.consume(client(i), policies, 1)[0]!.allowed) throw new Error('refused')
    }
    return Number(process.hrtime.bigint() - started) / CALLS
  }
  run(() => 'ip:warm-up')
  const one = run(() => 'ip:192.0.2.1')
  const many = run(i => names[i % CLIENTS]!)
  await store.close()
  return { one, many }
}

for (const algorithm of ALGORITHMS) {
  const slab = await measure(algorithm, false)
  const zone = await measure(algorithm, true)
  process.stdout.write(JSON.stringify({ algorithm, oneClientNs: slab.one, manyClientsNs: slab.many, zoneOneClientNs: zone.one, zoneManyClientsNs: zone.many }) + '\n')
}
