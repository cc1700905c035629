/**
 * The usage ledger on a shared zone (WORKERS > 1): two ledgers on one zone, as two worker
 * threads, count into the same lines; each lists the heaviest clients it knows by name,
 * with the shared counts.
 */
import t from 'tap'
import { SharedLedger } from '../../src/store/shared/ledger.js'
import { SharedZone } from '../../src/store/shared/zone.js'

const mark = (day: string) => ({ day, ttlMs: 86_400_000 })

t.test('two threads\' ledgers on one zone: one count per line, the heaviest by the shared counts', async t => {
  const zone = new SharedZone(1000)
  const a = new SharedLedger(zone, 1000)
  const b = new SharedLedger(new SharedZone(0, zone.buffer), 1000)
  a.record('key:one', mark('2026-12-06'), true, 2)
  b.record('key:one', mark('2026-12-06'), true, 3)
  b.record('key:one', mark('2026-12-06'), false, 1)
  b.record('key:one', mark('2026-12-05'), true, 1)
  a.record('key:two', mark('2026-12-06'), true, 1)
  a.record('key:two', mark('2026-11-30'), true, 7)
  t.same(a.usage('key:one', ['2026-12-05', '2026-12-06', '2026-12-07']), [
    { day: '2026-12-05', admitted: 1, refused: 0, cost: 1 },
    { day: '2026-12-06', admitted: 2, refused: 1, cost: 5 },
    { day: '2026-12-07', admitted: 0, refused: 0, cost: 0 }
  ], 'what either thread wrote, read by one')
  t.same(a.topUsage(['2026-12-06'], 10), [
    { client: 'key:one', admitted: 2, refused: 1, cost: 5 },
    { client: 'key:two', admitted: 1, refused: 0, cost: 1 }
  ], 'a thread lists the clients it wrote, with every thread\'s counts; other days left out')
  t.same(b.topUsage(['2026-12-05', '2026-12-06'], 1), [{ client: 'key:one', admitted: 3, refused: 1, cost: 6 }], 'days summed, the limit kept')
  b.clear()
  t.same(b.topUsage(['2026-12-06'], 10), [], 'clear forgets this thread\'s names')
  t.equal(a.usage('key:one', ['2026-12-06'])[0]!.admitted, 2, 'the counts stay: they are every thread\'s')
})

t.test('a line the zone gave up is left out of the list', async t => {
  const zone = new SharedZone(16)
  const ledger = new SharedLedger(zone, 1000)
  ledger.record('key:old', mark('2026-12-06'), true, 1)
  // Seventeen more lines in a zone of one bucket of 16: the least recently used goes.
  for (let i = 0; i < 17; i++) ledger.record(`key:${i}`, mark('2026-12-06'), true, 1)
  const top = ledger.topUsage(['2026-12-06'], 100)
  t.equal(top.length, 16, 'the 16 the zone holds')
  t.notOk(top.some(u => u.client === 'key:old'), 'the oldest, evicted, is not listed')
})
