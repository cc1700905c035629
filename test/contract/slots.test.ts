/**
 * In-flight slots, one sequence run against both stores (the memory store's counts and the
 * Lua script's leases): taken only with an admitted request, all or none, refused with
 * nothing charged, given back once per lease.
 */
import t from 'tap'
import { ManualClock } from '../../src/core/clock.js'
import { makeConcurrencyLimit, type SlotRequest } from '../../src/core/policy.js'
import { loadConfig } from '../../src/config/index.js'
import { MemoryStore } from '../../src/store/memory.js'
import { sharedTables } from '../../src/store/shared/tables.js'
import { RedisStore } from '../../src/store/redis/store.js'
import type { Store } from '../../src/store/types.js'
import { policy, START } from '../helpers/store-contract.js'
import { startRedis } from '../helpers/redis.js'

const perClient = makeConcurrencyLimit('concurrency', 2)
const everyone = makeConcurrencyLimit('global-concurrency', 3, true)
const limits = [policy('10/s', 3)]
const slots = (lease: string, which = [perClient]): SlotRequest => ({ limits: which, subjects: undefined, lease })

interface Asserts { equal (...a: any[]): unknown, same (...a: any[]): unknown }

async function sequence (t: Asserts, store: Store): Promise<void> {
  const take = async (client: string, lease: string, which = [perClient, everyone]) => await store.consume(client, limits, 1, undefined, slots(lease, which))
  const concurrencyOf = (d: Awaited<ReturnType<typeof take>>) => d[0]!.concurrency?.name
  t.equal(concurrencyOf(await take('a', 'l1')), undefined, 'first slot')
  t.equal(concurrencyOf(await take('a', 'l2')), undefined, 'second slot')
  const full = await take('a', 'l3')
  t.equal(concurrencyOf(full), 'concurrency', 'the client\'s third: its own limit is full')
  t.same([full[0]!.allowed, full[0]!.retryAfterMs, full.length], [false, 1000, 1])
  t.equal(concurrencyOf(await take('b', 'l4')), undefined, 'another client: the global limit has one left')
  t.equal(concurrencyOf(await take('c', 'l5')), 'global-concurrency', 'then everyone is full')
  await store.release('a', slots('l1', [perClient, everyone]))
  await store.release('a', slots('l1', [perClient, everyone]))
  t.equal(concurrencyOf(await take('c', 'l6')), undefined, 'a release gives back both slots, and only once')
  t.equal(concurrencyOf(await take('a', 'l7')), 'global-concurrency', 'the second release of l1 gave nothing back')
  // The rate limit, a burst of 3: only the admitted requests (l1, l2, then l8) charged it.
  await store.release('a', slots('l2', [perClient, everyone]))
  const rate = await take('a', 'l8')
  t.equal(rate[0]!.remaining, 0, 'a took its burst of 3 with l1, l2, l8: the refusals charged nothing')
  const refused = await take('a', 'l9')
  t.same([refused[0]!.allowed, refused[0]!.concurrency], [false, undefined], 'refused by the rate limit')
  await store.release('a', slots('l8', [perClient, everyone]))
  await store.release('a', slots('l9', [perClient, everyone]))
  t.equal(concurrencyOf(await take('d', 'l10')), undefined, 'the rate refusal took no slot: one free for d')
}

t.test('memory store', async t => {
  const store = new MemoryStore({ maxKeys: 100, clock: new ManualClock(START), purgeIntervalMs: 0 })
  t.teardown(() => store.close())
  await sequence(t, store)
})

t.test('memory store on shared zones (WORKERS): the in-flight counts in a SharedArrayBuffer', async t => {
  const store = new MemoryStore({ maxKeys: 100, clock: new ManualClock(START), purgeIntervalMs: 0, shared: sharedTables(100) })
  t.teardown(() => store.close())
  await sequence(t, store)
})

t.test('redis store (the Lua twin)', async t => {
  const redis = await startRedis(t)
  const settings = loadConfig({ UPSTREAM_URL: 'http://127.0.0.1:1', STORE: 'redis', REDIS_URL: redis.url, REDIS_TIMEOUT_MS: '2000' }).redis
  const clock = new ManualClock(START)
  // Global limits share a slot key: every key in one hash slot, as createStore does.
  const store = new RedisStore({ settings, decisionClock: clock, clock, singleSlot: true })
  await store.connect()
  t.teardown(() => store.close())
  await sequence(t, store)
})
