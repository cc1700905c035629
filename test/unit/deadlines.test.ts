import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { Deadlines, type Waiting } from '../../src/proxy/deadlines.js'
import { eventually } from '../helpers/load.js'

/** A waiting entry that notes when it expired, and its deadline then. */
function waiting (name: string, log: Array<{ name: string, at: number, deadline: number }>): Waiting & { due: number } {
  const w = {
    name,
    deadline: -1,
    due: -1,
    prevWaiting: undefined,
    nextWaiting: undefined,
    expired () { log.push({ name, at: performance.now(), deadline: w.due }) }
  }
  return w
}

t.test('each expires once, never before its deadline, in the order of its last activity', async t => {
  const log: Array<{ name: string, at: number, deadline: number }> = []
  const d = new Deadlines(60)
  const a = waiting('a', log)
  const b = waiting('b', log)
  const c = waiting('c', log)
  const gone = waiting('gone', log)
  // Time is injected: a's activity 20 ms after the others' start moves its deadline past
  // theirs, however late this machine runs the test (nothing can expire in between: no await).
  const t0 = performance.now()
  for (const w of [a, b, c, gone]) d.add(w, t0)
  d.remove(gone)
  d.refresh(a, t0 + 20)
  // Each one's deadline as the list holds it, to check against when it expired.
  for (const w of [a, b, c]) w.due = w.deadline
  t.ok(await eventually(() => log.length === 3, 5000))
  t.same(log.map(e => e.name), ['b', 'c', 'a'])
  for (const e of log) t.ok(e.at >= e.deadline, `${e.name} not early (${(e.at - e.deadline).toFixed(2)} ms after its deadline)`)
  d.refresh(b, performance.now())
  d.remove(c)
  await sleep(100)
  t.equal(log.length, 3, 'an expired one is not refreshed back in; removing it again changes nothing')
  d.close()
})

t.test('many, refreshed at random: every one expires, none early, none twice', async t => {
  const log: Array<{ name: string, at: number, deadline: number }> = []
  const d = new Deadlines(30)
  const all = Array.from({ length: 200 }, (_, i) => waiting(String(i), log))
  // Each one's deadline noted as it is set, so one that expires during the sleeps below (a
  // loaded machine can sleep past 30 ms) is checked against the deadline it really had.
  for (const w of all) { d.add(w, performance.now()); w.due = w.deadline }
  for (let round = 0; round < 3; round++) {
    await sleep(5)
    for (const w of all) {
      if (Math.random() < 0.5) { d.refresh(w, performance.now()); if (w.deadline >= 0) w.due = w.deadline }
    }
  }
  // Removed while still waiting: those must never expire.
  const removed = all.filter((w, i) => i % 10 === 0 && w.deadline >= 0)
  for (const w of removed) d.remove(w)
  t.ok(await eventually(() => log.length === all.length - removed.length, 5000))
  t.equal(new Set(log.map(e => e.name)).size, log.length, 'once each')
  t.ok(log.every(e => e.at >= e.deadline), 'none early')
  t.notOk(log.some(e => removed.some(w => (w as unknown as { name: string }).name === e.name)), 'none removed expired')
  for (let i = 1; i < log.length; i++) if (log[i]!.deadline < log[i - 1]!.deadline) t.fail('out of deadline order')
  d.close()
})

t.test('an entry that removes another as it expires (an abort ending a neighbour) leaves the list whole', async t => {
  const log: Array<{ name: string, at: number, deadline: number }> = []
  const d = new Deadlines(20)
  const b = waiting('b', log)
  const a = { ...waiting('a', log), expired () { log.push({ name: 'a', at: performance.now(), deadline: 0 }); d.remove(b) } }
  const c = waiting('c', log)
  d.add(a, performance.now())
  d.add(b, performance.now())
  d.add(c, performance.now())
  t.ok(await eventually(() => log.length === 2, 5000))
  await sleep(50)
  t.same(log.map(e => e.name), ['a', 'c'])
  d.close()
})
