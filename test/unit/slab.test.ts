import t from 'tap'
import { Slab } from '../../src/store/slab.js'

t.test('states of one, two and three numbers come back as stored', async t => {
  const s = new Slab(10)
  s.set('tat', 1.5, 100)
  s.set('fixed', [1000, 3], 100)
  s.set('sliding', [1000, 2.5, 4], 100)
  t.equal(s.get('tat'), 1.5)
  t.same(s.get('fixed'), [1000, 3])
  t.same(s.get('sliding'), [1000, 2.5, 4])
  t.equal(s.get('absent'), undefined)
  s.set('tat', [7, 8], 100)
  t.same(s.peek('tat'), [7, 8], 'a key may change shape (an algorithm changed by a reload)')
  s.set('fixed', 9, 100)
  t.equal(s.peek('fixed'), 9)
  t.equal(s.size, 3)
})

t.test('full, the least recently used entry makes room; get refreshes, peek does not', async t => {
  const s = new Slab(3)
  s.set('a', 1, 100)
  s.set('b', 2, 100)
  s.set('c', 3, 100)
  t.equal(s.get('a'), 1, 'a is now the most recently used')
  t.equal(s.peek('b'), 2, 'peeking at b leaves it the least recently used')
  s.set('d', 4, 100)
  t.equal(s.peek('b'), undefined, 'b evicted')
  t.same([s.peek('a'), s.peek('c'), s.peek('d')], [1, 3, 4])
  s.set('c', 30, 100)
  s.set('e', 5, 100)
  t.equal(s.peek('a'), undefined, 'a evicted: c was written after it')
  t.same([s.peek('c'), s.peek('d'), s.peek('e')], [30, 4, 5])
  t.equal(s.size, 3)
})

t.test('a bound of one', async t => {
  const s = new Slab(1)
  s.set('a', 1, 100)
  t.equal(s.get('a'), 1)
  s.set('b', 2, 100)
  t.equal(s.peek('a'), undefined)
  t.equal(s.get('b'), 2)
  t.equal(s.size, 1)
})

t.test('deleted and swept slots are reused; the sweep drops only what expired', async t => {
  const s = new Slab(4)
  s.set('a', 1, 10)
  s.set('b', 2, 20)
  s.set('c', 3, 30)
  s.set('d', 4, 40)
  s.delete('b')
  s.delete('b')
  t.equal(s.size, 3)
  s.set('e', 5, 50)
  t.same([s.peek('a'), s.peek('c'), s.peek('d'), s.peek('e')], [1, 3, 4, 5], 'the freed slot took e: nothing evicted')
  s.purge(30)
  t.same([s.peek('a'), s.peek('c'), s.peek('d'), s.peek('e')], [undefined, undefined, 4, 5])
  t.equal(s.size, 2)
  s.set('f', 6, 60)
  s.set('g', 7, 70)
  t.equal(s.size, 4, 'two swept slots reused')
  s.set('h', 8, 80)
  t.equal(s.peek('d'), undefined, 'then the least recently used is evicted')
  s.purge(1000)
  t.equal(s.size, 0)
  s.set('i', 9, 90)
  t.equal(s.get('i'), 9, 'an emptied slab takes entries again')
})

t.test('the columns grow past their first allocation and keep every state', async t => {
  const n = 5000
  const s = new Slab(n)
  for (let i = 0; i < n; i++) s.set(`k${i}`, i % 3 === 0 ? i : (i % 3 === 1 ? [i, 1] : [i, 1, 2]), i)
  t.equal(s.size, n)
  let ok = 0
  for (let i = 0; i < n; i++) {
    const v = s.peek(`k${i}`)
    const want = i % 3 === 0 ? i : (i % 3 === 1 ? [i, 1] : [i, 1, 2])
    if (JSON.stringify(v) === JSON.stringify(want)) ok++
  }
  t.equal(ok, n)
  s.set('one-more', 1, 1)
  t.equal(s.peek('k0'), undefined, 'at the bound the oldest goes')
  t.equal(s.size, n)
})

t.test('a key built by concatenation is found by an equal string', async t => {
  const s = new Slab(10)
  const part = 'ip:203.0.113.250'
  s.set('default|' + part, 1, 100)
  t.equal(s.get(['default', part].join('|')), 1)
  s.set('x\ud800y', 2, 100)
  t.equal(s.get('x\ud800' + 'y'), 2, 'a lone surrogate survives the copy')
})

t.test('clear empties it', async t => {
  const s = new Slab(10)
  s.set('a', 1, 100)
  s.clear()
  t.equal(s.size, 0)
  t.equal(s.get('a'), undefined)
  s.set('b', 2, 100)
  t.equal(s.get('b'), 2)
})

t.test('a set after a get stores under the key as it is then, whatever happened to it between', async t => {
  const s = new Slab(3)
  s.set('a', 1, 100)
  s.set('b', 2, 100)
  t.equal(s.get('a'), 1)
  s.set('a', 10, 100)
  t.equal(s.peek('a'), 10, 'the found slot written')
  t.equal(s.get('new'), undefined)
  s.set('new', 5, 100)
  t.equal(s.peek('new'), 5, 'absent at the get: a slot of its own')
  t.equal(s.size, 3)

  t.equal(s.get('a'), 10)
  s.delete('a')
  s.set('a', 11, 100)
  t.equal(s.get('a'), 11, 'deleted between: stored anew')
  t.equal(s.size, 3)

  t.equal(s.get('b'), 2)
  s.purge(200)
  s.set('b', 3, 300)
  t.equal(s.get('b'), 3, 'swept between: stored anew')
  t.equal(s.size, 1)

  t.equal(s.get('b'), 3)
  s.clear()
  s.set('b', 4, 300)
  t.equal(s.get('b'), 4, 'cleared between: stored anew')
  t.equal(s.size, 1)

  t.equal(s.get('b'), 4)
  s.set('c', 1, 300)
  s.set('b', 5, 300)
  t.equal(s.get('b'), 5, 'another key set between')
  t.same([s.peek('c'), s.size], [1, 2])
})
