import t from 'tap'
import { once } from 'node:events'
import { createServer, type Socket } from 'node:net'
import { RedisStore } from '../../src/store/redis/store.js'
import { loadConfig } from '../../src/config/index.js'
import { policy } from '../helpers/store-contract.js'
import { startRedis } from '../helpers/redis.js'
import { eventually } from '../helpers/load.js'
import type { Teardown } from '../helpers/tap.js'

t.test('the Redis store reports readiness and counts the clients it denies locally', async t => {
  const redis = await startRedis(t)
  const settings = loadConfig({ UPSTREAM_URL: 'http://127.0.0.1:1', REDIS_URL: redis.url, REDIS_TIMEOUT_MS: '1000' }).redis
  const store = new RedisStore({ settings })
  t.teardown(() => store.close())
  t.equal(store.ready(), false, 'not ready before connecting')
  await store.connect()
  t.equal(store.ready(), true)
  t.equal(store.mode(), 'redis')
  const p = [policy('1/h', 1)]
  t.equal((await store.consume('ip:192.0.2.1', p, 1))[0]!.allowed, true)
  t.equal((await store.consume('ip:192.0.2.1', p, 1))[0]!.allowed, false)
  t.equal(store.size(), 1, 'one client denied locally')
  const cached = store.consume('ip:192.0.2.1', p, 1)
  t.notOk(cached instanceof Promise, 'a known denial is answered synchronously')
  await redis.kill()
  t.ok(await eventually(() => !store.ready(), 2000), 'not ready once Redis is gone')
  await t.rejects(Promise.resolve(store.consume('ip:192.0.2.2', p, 1)), 'a decision fails fast without Redis')
})

/** A Redis store connected to a fresh redis-server, closed at teardown. */
async function connectedStore (t: Teardown): Promise<RedisStore> {
  const redis = await startRedis(t)
  const settings = loadConfig({ UPSTREAM_URL: 'http://127.0.0.1:1', REDIS_URL: redis.url, REDIS_TIMEOUT_MS: '1000' }).redis
  const store = new RedisStore({ settings })
  t.teardown(() => store.close())
  await store.connect()
  return store
}

t.test('the deny cache answers only the same set of limits at the same or higher cost', async t => {
  const store = await connectedStore(t)
  const slow = policy('1/h', 1)
  const other = policy('1/s', 5, 'other')
  const lookalike = policy('1/h', 1)
  await store.consume('c', [slow], 1)
  t.equal((await store.consume('c', [slow], 1))[0]!.allowed, false)
  t.ok(store.consume('c', [slow], 1) instanceof Array, 'same limits: answered locally')
  // (Each of these is refused by Redis and becomes the remembered denial: order matters.)
  const lookalikeAnswer = store.consume('c', [lookalike], 1)
  t.ok(lookalikeAnswer instanceof Promise, 'another limit under the same name: asks Redis')
  await lookalikeAnswer
  const another = store.consume('c', [lookalike, other], 1)
  t.ok(another instanceof Promise, 'another set of limits: asks Redis')
  t.same((await another).map(d => d.allowed), [false, true], 'and Redis still refuses it')
})

t.test('of two limits refusing at once, the longer wait is remembered', async t => {
  const store = await connectedStore(t)
  const short = policy('10/s', 1, 'short')
  const long = policy('1/h', 1, 'long')
  await store.consume('c', [short, long], 1)
  const refused = await store.consume('c', [short, long], 1)
  t.same(refused.map(d => d.allowed), [false, false])
  const cached = store.consume('c', [short, long], 1) as Awaited<ReturnType<typeof store.consume>>
  t.ok(Array.isArray(cached), 'still denied locally after the short wait would be over')
  t.ok(cached[1]!.retryAfterMs > 3_500_000)
})

t.test('a peer that accepts but never answers: start-up gives up after the bound, saying so', async t => {
  const sockets = new Set<Socket>()
  const silent = createServer(s => { sockets.add(s) }).listen(0, '127.0.0.1')
  await once(silent, 'listening')
  t.teardown(() => { for (const s of sockets) s.destroy(); silent.close() })
  const port = (silent.address() as { port: number }).port
  const settings = loadConfig({ UPSTREAM_URL: 'http://127.0.0.1:1', REDIS_URL: `redis://127.0.0.1:${port}`, REDIS_CONNECT_TIMEOUT_MS: '300' }).redis
  const store = new RedisStore({ settings })
  t.teardown(() => store.close())
  await t.rejects(store.connect(), { code: 'GW_STORE_CONNECT_FAILED', message: /within 300 ms/ })
})

t.test('a Redis Cluster whose nodes are all unreachable fails start-up after the bound', async t => {
  const { freePort } = await import('../helpers/process.js')
  const settings = loadConfig({ UPSTREAM_URL: 'http://127.0.0.1:1', REDIS_CLUSTER_NODES: `127.0.0.1:${await freePort()}`, REDIS_CONNECT_TIMEOUT_MS: '500' }).redis
  const store = new RedisStore({ settings })
  t.teardown(() => store.close())
  await t.rejects(store.connect(), { code: 'GW_STORE_CONNECT_FAILED', message: /within 500 ms/ })
})
