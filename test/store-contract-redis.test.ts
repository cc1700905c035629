import t from 'tap'
import { ManualClock } from '../src/clock.js'
import { RedisStore } from '../src/store/redis.js'
import { loadConfig } from '../src/config/index.js'
import { runContract } from './helpers/run-contract.js'
import { startRedis } from './helpers/redis.js'

const START = 1_795_000_000_123.456

t.test('store contract: redis store (the Lua mirror of the token bucket)', async t => {
  const redis = await startRedis(t)
  const settings = loadConfig({ UPSTREAM_URL: 'http://127.0.0.1:1', STORE: 'redis', REDIS_URL: redis.url, REDIS_TIMEOUT_MS: '1000' }).redis
  let n = 0
  await runContract(t, async () => {
    const clock = new ManualClock(START)
    // Each case gets its own prefix so cases cannot see each other's keys.
    const store = new RedisStore({ settings: { ...settings, keyPrefix: `contract${n++}:` }, decisionClock: clock, clock })
    await store.connect()
    return { store, setTime: (ms: number) => clock.set(START + ms), close: () => store.close() }
  })
})
