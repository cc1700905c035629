import t from 'tap'
import { ManualClock } from '../../src/core/clock.js'
import { tokenBucket } from '../../src/algorithms/token-bucket.js'
import { decide, settle, type State } from '../../src/algorithms/index.js'
import { MemoryStore } from '../../src/store/memory.js'
import { sharedTables } from '../../src/store/shared/tables.js'
import { retryAfterSeconds } from '../../src/limiter/headers.js'
import { CONTRACT, START, policy } from '../helpers/store-contract.js'
import { runContract } from '../helpers/run-contract.js'

t.test('store contract: memory store', async t => {
  await runContract(t, bans => {
    const clock = new ManualClock(0)
    const store = new MemoryStore({ maxKeys: 1000, clock, purgeIntervalMs: 0, bans })
    return { store, setNow: (ms: number) => clock.set(ms), close: () => store.close() }
  })
})

t.test('store contract: memory store on shared zones (WORKERS), every table in a SharedArrayBuffer', async t => {
  await runContract(t, bans => {
    const clock = new ManualClock(0)
    const store = new MemoryStore({ maxKeys: 1000, clock, purgeIntervalMs: 0, bans, shared: sharedTables(1000) })
    return { store, setNow: (ms: number) => clock.set(ms), close: () => store.close() }
  })
})

t.test('the pure functions are exactly what the store contract says, state threaded by hand', async t => {
  // Bans are the stores' bookkeeping, not an algorithm's.
  // In-flight slots too: the stores' bookkeeping (the slots contract); and the admin
  // operations (bans, resets, what the admin API shows).
  for (const c of CONTRACT.filter(c => c.bans === undefined && c.concurrency === undefined && !c.steps.some(s => 'admin' in s))) {
    // Keyed by policy name and subject, as the stores key them.
    const state = new Map<string, State>()
    c.steps.forEach((step, i) => {
      if ('release' in step || 'admin' in step) return
      const policies = (step.keys ?? c.policies.map((_, k) => k)).map(k => c.policies[k]!)
      const keys = policies.map((p, j) => p.name + '|' + (step.subjects?.[j] ?? step.client ?? 'client'))
      const now = (c.origin ?? START) + step.at
      if ('settle' in step) {
        policies.forEach((p, j) => {
          const next = settle(p, state.get(keys[j]!), now, (c.origin ?? START) + step.settle.chargedAt, step.settle.deltas[j]!)
          if (next !== undefined) state.set(keys[j]!, next.state)
        })
        return
      }
      const ds = policies.map((p, j) => decide(p, state.get(keys[j]!), now, step.cost ?? 1))
      const admitted = ds.every(d => d.allowed || d.policy.dryRun)
      ds.forEach((d, j) => { if ((admitted && d.allowed) || d.repair) state.set(keys[j]!, d.state) })
      ds.forEach((d, j) => {
        t.equal(d.allowed, step.expect[j]!.allowed, `${c.name}: step ${i} allowed`)
        if (step.expect[j]!.remaining !== undefined) t.equal(d.remaining, step.expect[j]!.remaining, `${c.name}: step ${i} remaining`)
      })
    })
  }
})

t.test('a rejection returns the stored state unchanged', async t => {
  const p = policy('1/s', 1)
  const first = tokenBucket(undefined, p, START, 1)
  const second = tokenBucket(first.state as number, p, START + 10, 1)
  t.equal(second.allowed, false)
  t.equal(second.state, first.state)
})

t.test('a cost above the burst can never pass, and a rejection of an unseen client stores nothing new', async t => {
  const d = tokenBucket(undefined, policy('10/s', 2), START, 3)
  t.equal(d.allowed, false)
  t.equal(d.remaining, 2)
  t.equal(d.state, START, 'the state of an unseen client is a full bucket: TAT = now')
})

t.test('Retry-After is whole seconds, at least 1, never earlier than the admitting retry', async t => {
  const table: Array<[number, number]> = [[0, 1], [1, 1], [999, 1], [1000, 1], [1000.001, 2], [1001, 2], [59_999, 60], [3_598_500, 3599]]
  for (const [ms, s] of table) t.equal(retryAfterSeconds(ms), s, `${ms} ms → ${s} s`)
})
