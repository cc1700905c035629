import t from 'tap'
import { pino } from 'pino'
import { ManualClock, systemClock } from '../../src/core/clock.js'
import { FailoverStore } from '../../src/store/failover.js'
import { MemoryStore } from '../../src/store/memory.js'
import { policy } from '../helpers/store-contract.js'
import { RedisStore } from '../../src/store/redis/store.js'
import { loadConfig, type BanSettings, type RedisSettings } from '../../src/config/index.js'
import type { Teardown } from '../helpers/tap.js'
import { runContract } from '../helpers/run-contract.js'
import { decide, settle } from '../../src/algorithms/index.js'
import type { Policy } from '../../src/core/policy.js'
import { startRedis } from '../helpers/redis.js'

/** A redis-server of the test's own, as the gateway's Redis settings. */
async function redisSettings (t: Teardown): Promise<RedisSettings> {
  const redis = await startRedis(t)
  return loadConfig({ UPSTREAM_URL: 'http://127.0.0.1:1', STORE: 'redis', REDIS_URL: redis.url, REDIS_TIMEOUT_MS: '1000' }).redis
}

/** A connected Redis store deciding on the case's clock; each case its own prefix, so cases cannot see each other's keys. */
async function connected (settings: RedisSettings, keyPrefix: string, clock: ManualClock, bans: BanSettings | undefined, singleSlot: boolean, gatewayClock = clock): Promise<RedisStore> {
  const store = new RedisStore({ settings: { ...settings, keyPrefix }, decisionClock: clock, clock: gatewayClock, bans, singleSlot })
  await store.connect()
  return store
}

t.test('store contract: redis store (the Lua mirror of the algorithms)', async t => {
  const settings = await redisSettings(t)
  let n = 0
  await runContract(t, async (bans, shared) => {
    // Redis TIME (the decision clock) and the gateway's own, which a case may skew.
    const clock = new ManualClock(0)
    const gateway = new ManualClock(0)
    const store = await connected(settings, `contract${n++}:`, clock, bans, shared, gateway)
    return { store, setNow: (ms: number, gatewayMs: number) => { clock.set(ms); gateway.set(gatewayMs) }, close: () => store.close(), twoClocks: true }
  })
})

t.test('store contract: the failover store over Redis (what the gateway runs with STORE=redis)', async t => {
  const settings = await redisSettings(t)
  let n = 0
  await runContract(t, async (bans, shared) => {
    const clock = new ManualClock(0)
    const gateway = new ManualClock(0)
    const primary = await connected(settings, `failover${n++}:`, clock, bans, shared, gateway)
    const local = new MemoryStore({ maxKeys: 1000, clock, purgeIntervalMs: 0, bans })
    const store = new FailoverStore({ primary, local, failureMode: 'local', probeIntervalMs: 1000, log: pino({ level: 'silent' }) })
    return { store, setNow: (ms: number, gatewayMs: number) => { clock.set(ms); gateway.set(gatewayMs) }, close: () => store.close(), twoClocks: true }
  })
})

t.test('the production path: decisions on Redis TIME agree with the memory store on the system clock', async t => {
  const settings = await redisSettings(t)
  const store = new RedisStore({ settings: { ...settings, keyPrefix: 'time:' } })
  await store.connect()
  t.teardown(() => store.close())
  const memory = new MemoryStore({ maxKeys: 100, clock: systemClock, purgeIntervalMs: 0 })
  t.teardown(() => memory.close())
  for (const p of [policy('1/m', 3, 'bucket'), policy('3/m', 3, 'fixed', 'fixed-window'), policy('3/m', 3, 'sliding', 'sliding-window')]) {
    const onRedis: string[] = []
    const inMemory: string[] = []
    for (let i = 0; i < 4; i++) {
      const [r] = await store.consume('client', [p], 1)
      const [m] = memory.consume('client', [p], 1)
      onRedis.push(`${r!.allowed}/${r!.remaining}`)
      inMemory.push(`${m!.allowed}/${m!.remaining}`)
      if (!r!.allowed) {
        // A minute's quota: the wait is never 0 and never past two windows (a sliding window
        // weighs the current one into the next).
        t.ok(r!.retryAfterMs > 0 && r!.retryAfterMs <= 120_000, `${p.name}: retry after ${r!.retryAfterMs} ms, in (0, 120000]`)
        t.ok(r!.resetMs > 0 && r!.resetMs <= 180_000, `${p.name}: the quota back in full within 3 min (${r!.resetMs} ms)`)
      }
    }
    t.same(onRedis, ['true/2', 'true/1', 'true/0', 'false/0'], `${p.name}: three admitted, the fourth refused`)
    t.same(onRedis, inMemory, `${p.name}: as the memory store decides`)
    const ttl = await store.client.pttl(`time:{client}:${p.name}`)
    t.ok(ttl > 0 && ttl <= 180_000, `${p.name}: the key expires once its quota is back (${ttl} ms)`)
  }
})

t.test('an algorithm no branch knows is an error on both sides, never a silent sliding window (issue 25.18)', async t => {
  const settings = await redisSettings(t)
  const store = new RedisStore({ settings: { ...settings, keyPrefix: 'unknown:' } })
  await store.connect()
  t.teardown(() => store.close())
  const bogus = { ...policy('2/s', 2, 'bogus', 'sliding-window'), algorithm: 'gcra' } as unknown as Policy
  await t.rejects(Promise.resolve(store.consume('client', [bogus], 1)), /^GW_UNKNOWN_ALGORITHM no algorithm has the code/, 'the consume script refuses it')
  store.settle('client', [bogus], [1], undefined, Date.now())
  t.equal(await store.client.exists('unknown:{client}:bogus'), 0, 'the settle script writes nothing for it')
  t.equal(decide(bogus, undefined, Date.now(), 1), undefined, 'decide() has no case for it (and a fifth name in ALGORITHMS is a compile error there)')
  t.equal(settle(bogus, undefined, Date.now(), Date.now(), 1), undefined, 'nor settle()')
})
