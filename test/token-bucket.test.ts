import t from 'tap'
import { ManualClock } from '../src/clock.js'
import { tokenBucket } from '../src/limiter/algorithms/token-bucket.js'
import { MemoryStore } from '../src/store/memory.js'
import { retryAfterSeconds } from '../src/limiter/headers.js'
import { CONTRACT, policy } from './helpers/store-contract.js'
import { runContract } from './helpers/run-contract.js'

const START = 1_795_000_000_123.456

t.test('store contract: memory store', async t => {
  await runContract(t, () => {
    const clock = new ManualClock(START)
    const store = new MemoryStore({ maxKeys: 1000, clock, purgeIntervalMs: 0 })
    return { store, setTime: (ms: number) => clock.set(START + ms), close: () => store.close() }
  })
})

t.test('the pure function is exactly what the store contract says, state threaded by hand', async t => {
  for (const c of CONTRACT) {
    // Keyed by policy name, as the stores key them.
    const state = new Map<string, number | undefined>()
    c.steps.forEach((step, i) => {
      const names = (step.keys ?? c.policies.map((_, k) => k)).map(k => c.policies[k]!)
      const ds = names.map(p => tokenBucket(state.get(p.name), p, START + step.at, step.cost ?? 1))
      const all = ds.every(d => d.allowed)
      names.forEach((p, j) => { if (all || ds[j]!.repair) state.set(p.name, ds[j]!.state) })
      ds.forEach((d, j) => t.equal(d.allowed, step.expect[j]!.allowed, `${c.name}: step ${i} allowed`))
    })
  }
})

t.test('a rejection returns the stored state unchanged', async t => {
  const p = policy('1/s', 1)
  const first = tokenBucket(undefined, p, START, 1)
  const second = tokenBucket(first.state, p, START + 10, 1)
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
