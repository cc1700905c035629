/**
 * A worker thread deciding against a memory store on shared zones (test/contract/
 * workers-exact.test.ts): waits for the start signal, then asks `calls` times for one
 * client under `rate`/`burst` and posts how many were admitted.
 */
import { parentPort, workerData } from 'node:worker_threads'
import { systemClock, type Clock } from '../../src/core/clock.js'
import { makePolicy, type AlgorithmName } from '../../src/core/policy.js'
import { parseRate } from '../../src/core/rate.js'
import { MemoryStore } from '../../src/store/memory.js'
import { sharedTables, type ZoneBuffers } from '../../src/store/shared/tables.js'

interface Job {
  buffers: ZoneBuffers
  start: Int32Array
  algorithm: AlgorithmName
  rate: string
  burst: number
  calls: number
  /** Epoch ms every decision is taken at (no refill), or undefined: the real clock. */
  frozenAt: number | undefined
}

const job = workerData as Job
const clock: Clock = job.frozenAt === undefined ? systemClock : { now: () => job.frozenAt! }
const store = new MemoryStore({ maxKeys: 1000, clock, purgeIntervalMs: 0, shared: sharedTables(1000, job.buffers) })
const policies = [makePolicy('default', { algorithm: job.algorithm, rate: parseRate(job.rate), burst: job.burst, maxDelayMs: 0, dryRun: false })]
// Every worker starts at once: each says it is ready, then the main thread flips the flag
// and wakes them all.
parentPort!.postMessage({ ready: true })
Atomics.wait(job.start, 0, 0)
const first = performance.timeOrigin + performance.now()
let admitted = 0
let refused = 0
for (let i = 0; i < job.calls; i++) {
  if (store.consume('ip:192.0.2.1', policies, 1)[0]!.allowed) admitted++
  else refused++
}
parentPort!.postMessage({ admitted, refused, first, last: performance.timeOrigin + performance.now() })
