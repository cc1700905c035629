import t from 'tap'
import { startUpstream } from '../helpers/upstream.js'
import { startGateway } from '../helpers/gateway.js'
import { startRedis } from '../helpers/redis.js'
import { send } from '../helpers/http.js'
import { eventually } from '../helpers/load.js'
import { apiKeyId } from '../../src/identity/identify.js'

t.test('every key has a TTL, carries the prefix and a hash tag, and the database drains', async t => {
  const redis = await startRedis(t)
  const upstream = await startUpstream(t)
  const gw = await startGateway(t, {
    UPSTREAM_URL: upstream.url, STORE: 'redis', REDIS_URL: redis.url, REDIS_TIMEOUT_MS: '1000', REDIS_KEY_PREFIX: 'gw:',
    RATE_LIMIT_RATE: '2/s', RATE_LIMIT_BURST: '5', GLOBAL_RATE_LIMIT_RATE: '50/s', GLOBAL_RATE_LIMIT_BURST: '50',
    TRUST_PROXY: '127.0.0.1', API_KEYS: 'secret-key-1', RATE_LIMIT_KEY_BY: 'api-key,header:x-user-id,ip',
    RATE_LIMIT_BAN_AFTER: '3', RATE_LIMIT_BAN_WINDOW: '2s', RATE_LIMIT_BAN_DURATION: '2s'
  })
  for (let i = 0; i < 10; i++) {
    await send(`${gw.url}/ping`, { headers: { 'x-forwarded-for': `203.0.113.${i}` } })
    await send(`${gw.url}/ping`, { headers: { 'x-api-key': 'secret-key-1' } })
    await send(`${gw.url}/ping`, { headers: { 'x-user-id': '{evil}}key' } })
  }
  // Every key with its TTL in one atomic script: a short-lived key cannot expire between
  // being listed and being asked (a loaded machine once made that -2).
  const listed = await redis.admin.eval("local out = {} for _, k in ipairs(redis.call('KEYS', '*')) do out[#out + 1] = k out[#out + 1] = redis.call('PTTL', k) end return out", 0) as Array<string | number>
  const keys: string[] = []
  for (let i = 0; i < listed.length; i += 2) {
    const key = String(listed[i])
    const ttl = Number(listed[i + 1])
    keys.push(key)
    t.match(key, /^gw:\{\*\}:/, `${key}: prefixed, in the global limit's slot`)
    // Full again after (tokens taken / rate): at most 5 per client at 2/s, 30 at 50/s.
    t.ok(ttl > 0 && ttl <= 2500, `${key}: TTL ${ttl} ms`)
  }
  t.ok(keys.length >= 12, `${keys.length} keys written`)
  t.notOk(keys.some(k => k.includes('secret-key-1')), 'API keys never appear in Redis')
  t.ok(keys.includes(`gw:{*}:default:${apiKeyId('secret-key-1')}`))
  t.ok(keys.includes('gw:{*}:default:h:x-user-id:%7Bevil%7D%7Dkey'), 'braces in a client id are escaped')
  t.ok(keys.includes(`gw:{*}:ban:${apiKeyId('secret-key-1')}`), 'a ban lives in the same slot')
  t.ok(await eventually(async () => Number(await redis.admin.dbsize()) === 0, 5000), 'the database drains to empty once buckets are full again')
})

t.test('without a global limit each client has its own hash tag', async t => {
  const redis = await startRedis(t)
  const upstream = await startUpstream(t)
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, STORE: 'redis', REDIS_URL: redis.url, REDIS_TIMEOUT_MS: '1000' })
  await send(`${gw.url}/ping`)
  t.same(await redis.admin.keys('*'), ['rl:{ip:127.0.0.1}:default'])
})

t.test('a rejected request writes nothing, and a known-blocked client costs no Redis call', async t => {
  const redis = await startRedis(t)
  const upstream = await startUpstream(t)
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, STORE: 'redis', REDIS_URL: redis.url, REDIS_TIMEOUT_MS: '1000', RATE_LIMIT_RATE: '1/h', RATE_LIMIT_BURST: '1' })
  t.equal((await send(`${gw.url}/ping`)).status, 200)
  const tat = await redis.admin.get('rl:{ip:127.0.0.1}:default')
  const calls = async () => Number(/cmdstat_evalsha:calls=(\d+)/.exec(await redis.admin.info('commandstats'))?.[1] ?? 0) +
    Number(/cmdstat_eval:calls=(\d+)/.exec(await redis.admin.info('commandstats'))?.[1] ?? 0)
  const before = await calls()
  const first = await send(`${gw.url}/ping`)
  t.equal(first.status, 429)
  t.equal(await calls(), before + 1, 'the first rejection asked Redis')
  for (let i = 0; i < 20; i++) t.equal((await send(`${gw.url}/ping`)).status, 429)
  t.equal(await calls(), before + 1, 'the next 20 were refused locally')
  t.equal(await redis.admin.get('rl:{ip:127.0.0.1}:default'), tat, 'the bucket did not move')
  const last = await send(`${gw.url}/ping`)
  t.ok(Number(last.headers['retry-after']) <= Number(first.headers['retry-after']), 'Retry-After counts down')
})
