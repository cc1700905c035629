import t from 'tap'
import { ManualClock } from '../src/core/clock.js'
import { RedisStore } from '../src/store/redis.js'
import { loadConfig } from '../src/config/index.js'
import { runContract } from './helpers/run-contract.js'
import { startRedis } from './helpers/redis.js'

t.test('store contract: redis store (the Lua mirror of the algorithms)', async t => {
  const redis = await startRedis(t)
  const settings = loadConfig({ UPSTREAM_URL: 'http://127.0.0.1:1', STORE: 'redis', REDIS_URL: redis.url, REDIS_TIMEOUT_MS: '1000' }).redis
  let n = 0
  await runContract(t, async bans => {
    const clock = new ManualClock(0)
    // Each case gets its own prefix so cases cannot see each other's keys.
    const store = new RedisStore({ settings: { ...settings, keyPrefix: `contract${n++}:` }, decisionClock: clock, clock, bans })
    await store.connect()
    return { store, setNow: (ms: number) => clock.set(ms), close: () => store.close() }
  })
})
