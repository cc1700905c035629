/**
 * The shared zone on one thread: the slab's operations (states of one to three numbers,
 * LRU eviction, the sweep), per bucket; a second view of the same buffer sees every
 * write; locks held by a thread that died are freed.
 */
import t from 'tap'
import { threadId } from 'node:worker_threads'
import { SharedZone, WAYS, RECORD_BYTES, zoneBytes } from '../../src/store/shared/zone.js'

t.test('states of one, two and three numbers come back as stored, through another view of the buffer too', async t => {
  const z = new SharedZone(100)
  z.set('tat', 1.5, 100)
  z.set('fixed', [1000, 3], 100)
  z.set('sliding', [1000, 2.5, 4], 100)
  const other = new SharedZone(0, z.buffer)
  t.equal(other.get('tat'), 1.5)
  t.same(other.get('fixed'), [1000, 3])
  t.same(other.get('sliding'), [1000, 2.5, 4])
  t.equal(other.get('absent'), undefined)
  other.set('tat', [7, 8], 100)
  t.same(z.peek('tat'), [7, 8], 'a key may change shape (an algorithm changed by a reload)')
  z.set('fixed', 9, 100)
  t.equal(other.peek('fixed'), 9)
  t.equal(z.size, 3)
  t.equal(other.size, 3)
  z.delete('tat')
  z.delete('tat')
  t.equal(other.size, 2, 'a key deleted twice counts once')
  z.clear()
  t.equal(other.size, 0)
  t.equal(other.peek('sliding'), undefined)
})

t.test('two zones hash the same key apart (a seed each), and one bucket holds WAYS keys', async t => {
  const a = new SharedZone(WAYS)
  t.equal(a.buckets, 1, `${WAYS} records: one bucket`)
  t.equal(a.buffer.byteLength, zoneBytes(WAYS))
  t.ok(zoneBytes(1_000_000) / 1_000_000 < RECORD_BYTES + 8, `${zoneBytes(1_000_000) / 1_000_000} bytes per record at 1M`)
  for (let i = 0; i < WAYS; i++) a.set(`k${i}`, i, 100)
  t.equal(a.size, WAYS)
  for (let i = 0; i < WAYS; i++) t.equal(a.peek(`k${i}`), i)
})

t.test('a full bucket gives its least recently used record to a new key; get refreshes, peek does not', async t => {
  const z = new SharedZone(WAYS)
  for (let i = 0; i < WAYS; i++) z.set(`k${i}`, i, 100)
  t.equal(z.get('k0'), 0, 'k0 is now the most recently used')
  t.equal(z.peek('k1'), 1, 'peeking at k1 leaves it the least recently used')
  z.set('new', 99, 100)
  t.equal(z.peek('k1'), undefined, 'k1 evicted')
  t.equal(z.peek('k0'), 0)
  t.equal(z.peek('new'), 99)
  t.equal(z.size, WAYS, 'an eviction leaves the count as it was')
  z.set('k2', 20, 100)
  z.set('newer', 98, 100)
  t.equal(z.peek('k3'), undefined, 'k3 evicted: k2 was written after it')
  t.equal(z.peek('k2'), 20)
})

t.test('the sweep drops only what expired; freed records are reused', async t => {
  const z = new SharedZone(64)
  for (let i = 0; i < 40; i++) z.set(`k${i}`, i, i < 10 ? 10 : 50)
  z.purge(10)
  t.equal(z.size, 30)
  t.equal(z.peek('k0'), undefined)
  t.equal(z.peek('k10'), 10)
  z.set('k0', 1, Infinity)
  z.purge(1e15)
  t.equal(z.size, 1, 'a record that never expires stays')
  t.equal(z.get('k0'), 1)
})

t.test('a decision\'s keys are held together: reads and writes inside take no lock of their own', async t => {
  const z = new SharedZone(1000)
  const keys = ['default|ip:a', 'search|ip:a', 'default|ip:a']
  z.lock(keys)
  z.set(keys[0]!, 5, 100)
  z.set(keys[1]!, [1, 2], 100)
  t.equal(z.get(keys[0]!), 5)
  t.equal(z.get('not-held'), undefined, 'a key not held is locked on its own (unless its bucket is held)')
  const one = new SharedZone(1)
  one.lock(['a'])
  one.set('b', 2, 100)
  t.equal(one.get('b'), 2, 'another key of a held bucket: no second lock (which would wait forever)')
  one.unlock()
  z.unlock()
  t.same(z.peek('search|ip:a'), [1, 2])
  // Held buckets are released: another lock of the same keys does not wait.
  z.lock(keys)
  z.unlock()
  const many = Array.from({ length: 20 }, (_, i) => `k${i}`)
  z.lock(many)
  for (const k of many) z.set(k, 1, 100)
  z.unlock()
  t.equal(z.size, 22, 'more keys than the first held list: it grows')
})

t.test('the locks a dead thread held are freed by the one that saw it die', async t => {
  const z = new SharedZone(1000)
  z.lock(['a', 'b'])
  // As if this thread had died holding them: another frees them by its id.
  const freed = new SharedZone(0, z.buffer).releaseHeldBy(threadId)
  t.ok(freed >= 1 && freed <= 2, `${freed} lock(s) freed`)
  const later = new SharedZone(0, z.buffer)
  later.set('a', 1, 100)
  t.equal(later.peek('a'), 1, 'the bucket can be locked again')
  t.equal(z.releaseHeldBy(threadId + 1000), 0, 'a thread holding nothing frees nothing')
})
