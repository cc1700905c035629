import t from 'tap'
import { ManualClock } from '../../src/core/clock.js'
import { MemoryStore } from '../../src/store/memory.js'
import { policy } from '../helpers/store-contract.js'
import { startUpstream } from '../helpers/upstream.js'
import { startGateway } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'

const p = policy('1/m', 2)

t.test('a flood of distinct clients never grows the store past its bound', async t => {
  const clock = new ManualClock()
  const store = new MemoryStore({ maxKeys: 10_000, clock, purgeIntervalMs: 0 })
  t.teardown(() => store.close())
  let hotRejected = 0
  for (let i = 0; i < 200_000; i++) {
    store.consume(`ip:flood-${i}`, [p], 1)
    // The abusive client keeps sending while the flood goes on: it stays tracked and limited.
    if (i % 100 === 0) {
      const [d] = store.consume('ip:hot', [p], 1)
      if (i >= 200 && d!.allowed === false) hotRejected++
    }
  }
  t.ok(store.size() <= 10_000, `size ${store.size()} ≤ 10000`)
  t.equal(hotRejected, 200_000 / 100 - 2, 'the over-limit client was limited throughout the flood')
})

t.test('keys whose buckets have refilled are swept out', async t => {
  const clock = new ManualClock()
  const store = new MemoryStore({ maxKeys: 1000, clock, purgeIntervalMs: 0 })
  t.teardown(() => store.close())
  for (let i = 0; i < 500; i++) store.consume(`k${i}`, [p], 1)
  t.equal(store.size(), 500)
  clock.advance(30_000)
  store.purgeStale()
  t.equal(store.size(), 500, 'a bucket still refilling is kept')
  clock.advance(30_001)
  store.purgeStale()
  t.equal(store.size(), 0, 'a full bucket is the same as no entry, and is dropped')
})

t.test('the periodic sweep runs on its own', async t => {
  const clock = new ManualClock()
  const store = new MemoryStore({ maxKeys: 100, clock, purgeIntervalMs: 20 })
  t.teardown(() => store.close())
  store.consume('k', [p], 1)
  clock.advance(60_001)
  await new Promise(resolve => setTimeout(resolve, 60))
  t.equal(store.size(), 0)
})

t.test('through the gateway: MEMORY_STORE_MAX_KEYS bounds tracked clients', async t => {
  const upstream = await startUpstream(t)
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, TRUST_PROXY: '127.0.0.1', MEMORY_STORE_MAX_KEYS: '50', RATE_LIMIT_BURST: '1', RATE_LIMIT_RATE: '1/h' })
  for (let i = 0; i < 300; i++) {
    const r = await send(`${gw.url}/ping`, { headers: { 'x-forwarded-for': `198.51.100.${i % 250}, 203.0.${i}.1`.replace(/^[^,]+, /, '') } })
    t.equal(r.status, 200, `client ${i} admitted`)
  }
  const store = gw.app.store as MemoryStore
  t.equal(store.size(), 50, 'the store is full at MEMORY_STORE_MAX_KEYS, and no fuller, after 300 clients')
  t.not(store.peek('default|ip:203.0.299.1'), undefined, 'the latest client is tracked')
  t.equal(store.peek('default|ip:203.0.0.1'), undefined, 'the least recently used went')
})
