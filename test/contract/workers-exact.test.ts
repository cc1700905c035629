/**
 * Exact across threads: 2 and 4 worker threads deciding at once for one client against one
 * memory store on shared zones never admit more than the algorithm allows. With time
 * frozen (nothing refills) exactly the capacity passes, whatever the interleaving; with
 * the real clock, at most rate × elapsed + burst.
 */
import t from 'tap'
import { Worker } from 'node:worker_threads'
import { once } from 'node:events'
import type { AlgorithmName } from '../../src/core/policy.js'
import { buffersOf, sharedTables } from '../../src/store/shared/tables.js'

const WORKER = new URL('../helpers/zone-worker.js', import.meta.url)

interface Run { admitted: number, refused: number, first: number, last: number }

async function hammer (threads: number, algorithm: AlgorithmName, rate: string, burst: number, calls: number, frozenAt: number | undefined): Promise<{ runs: Run[], ms: number }> {
  const tables = sharedTables(1000)
  const start = new Int32Array(new SharedArrayBuffer(4))
  const workers = Array.from({ length: threads }, () => new Worker(WORKER, { workerData: { buffers: buffersOf(tables), start, algorithm, rate, burst, calls, frozenAt } }))
  const ready = workers.map(w => once(w, 'message'))
  const done = workers.map(async w => {
    await ready[workers.indexOf(w)]
    const [message] = await once(w, 'message') as [Run]
    await once(w, 'exit')
    return message
  })
  // Every worker loaded and waiting: start them together.
  await Promise.all(ready)
  const began = Date.now()
  Atomics.store(start, 0, 1)
  Atomics.notify(start, 0)
  const runs = await Promise.all(done)
  return { runs, ms: Date.now() - began }
}

/** Whether every thread was deciding while another was: the runs' spans overlap. */
function overlapping (runs: Run[]): boolean {
  return Math.max(...runs.map(r => r.first)) < Math.min(...runs.map(r => r.last))
}

const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0)

for (const threads of [2, 4]) {
  t.test(`${threads} threads, time frozen: exactly the capacity is admitted`, async t => {
    const cases: Array<[AlgorithmName, string, number, number]> = [
      ['token-bucket', '10/s', 5000, 5000],
      ['fixed-window', '3000/m', 1, 3000],
      ['sliding-window', '3000/m', 1, 3000]
    ]
    for (const [algorithm, rate, burst, capacity] of cases) {
      const calls = 100_000
      const { runs } = await hammer(threads, algorithm, rate, burst, calls, 1_800_000_030_000)
      const admitted = runs.map(r => r.admitted)
      t.equal(sum(admitted), capacity, `${algorithm}: ${admitted.join(' + ')} = ${capacity} of ${threads * calls} asked`)
      t.ok(runs.every(r => r.admitted + r.refused === calls), 'every question answered')
      t.ok(overlapping(runs), 'the threads decided at the same time')
    }
  })
}

t.test('4 threads, the real clock: at most rate × elapsed + burst', async t => {
  const { runs, ms } = await hammer(4, 'token-bucket', '1000/s', 100, 100_000, undefined)
  const admitted = sum(runs.map(r => r.admitted))
  const bound = Math.floor(1000 * (ms + 1) / 1000) + 100
  t.ok(overlapping(runs), 'the threads decided at the same time')
  t.ok(admitted <= bound, `${admitted} admitted in ${ms} ms, at most ${bound}`)
  t.ok(admitted >= 100, 'the burst at least')
})
