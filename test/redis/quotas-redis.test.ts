/**
 * Quotas and the usage ledger on Redis: two instances on one Redis share a key's quota and
 * its ledger (written in the decision's own script call); refusals one instance answers
 * from its deny cache reach the ledger within a second; the heaviest keys are found on Redis.
 */
import t from 'tap'
import { startGateway, type TestGateway } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'
import { eventually } from '../helpers/load.js'
import { startRedis } from '../helpers/redis.js'
import { startUpstream } from '../helpers/upstream.js'
import { ManualClock } from '../../src/core/clock.js'
import { captureLogs } from '../helpers/logs.js'

const TOKEN = 'test-admin-token-0123456789'
const usageOf = async (gw: TestGateway, key: string) => JSON.parse((await send(`${gw.adminUrl}/admin/usage?apiKey=${key}`, { headers: { authorization: `Bearer ${TOKEN}` } })).body).total as { admitted: number, refused: number, cost: number }

t.test('two instances on one Redis share a monthly quota and the ledger', async t => {
  const redis = await startRedis(t)
  const upstream = await startUpstream(t)
  const env = { UPSTREAM_URL: upstream.url, STORE: 'redis', REDIS_URL: redis.url, ADMIN_TOKEN: TOKEN, RATE_LIMIT_TIERS: 'free=100/s:100+4/mo', API_KEYS: 'k1:free,k2:free' }
  const a = await startGateway(t, env)
  const b = await startGateway(t, env)
  const call = (gw: TestGateway, key: string) => send(`${gw.url}/ping`, { headers: { 'x-api-key': key } })
  const statuses: number[] = []
  for (let i = 0; i < 8; i++) statuses.push((await call(i % 2 === 0 ? a : b, 'k1')).status)
  t.same(statuses, [200, 200, 200, 200, 429, 429, 429, 429], 'one quota of 4 a month, through either instance')
  t.equal((await call(b, 'k2')).status, 200, 'another key has its own')
  // Each instance may have answered some refusals from its deny cache: they are flushed to Redis within a second.
  t.ok(await eventually(async () => JSON.stringify(await usageOf(a, 'k1')) === JSON.stringify({ admitted: 4, refused: 4, cost: 4 }), 5000), 'the ledger, read through one instance, has all of them')
  t.same(await usageOf(b, 'k1'), { admitted: 4, refused: 4, cost: 4 }, 'and through the other')
  const day = new Date().toISOString().slice(0, 10)
  const top = JSON.parse((await send(`${b.adminUrl}/admin/usage/top?from=${day}&to=${day}`, { headers: { authorization: `Bearer ${TOKEN}` } })).body)
  t.same(top.clients.map((c: { admitted: number }) => c.admitted), [4, 1], 'the heaviest keys, found on Redis')
  const lines = await redis.admin.keys('rl:*usage*')
  t.equal(lines.length, 2, 'one hash per key per day')
  const ttl = await redis.admin.pttl(lines[0]!)
  t.ok(ttl > 89 * 86_400_000 && ttl <= 90 * 86_400_000, `kept USAGE_RETENTION_DAYS (${ttl} ms)`)
  t.equal(upstream.total(), 5)
})

t.test('on Redis, the ledger\'s days are the gateway\'s (QUOTA_TIMEZONE), and equal what the upstream saw across midnight; a key\'s quota reaches every instance', async t => {
  const redis = await startRedis(t)
  const upstream = await startUpstream(t)
  // The ledger's day is the gateway's clock's, here a manual one: a second before the next
  // UTC midnight, then a second after it (the limits themselves run on Redis's clock).
  const midnight = Math.ceil((Date.now() + 1) / 86_400_000) * 86_400_000
  const clock = new ManualClock(midnight - 1000)
  const env = { UPSTREAM_URL: upstream.url, STORE: 'redis', REDIS_URL: redis.url, ADMIN_TOKEN: TOKEN, USAGE_LEDGER: 'true', RATE_LIMIT_TIERS: 'free=100/s:100', API_KEYS: 'k1:free' }
  const a = await startGateway(t, env, { clock })
  const b = await startGateway(t, env, { clock })
  const ping = (gw: TestGateway) => send(`${gw.url}/ping`, { headers: { 'x-api-key': 'k1' } })
  for (let i = 0; i < 3; i++) t.equal((await ping(i % 2 === 0 ? a : b)).status, 200)
  clock.set(midnight + 1000)
  for (let i = 0; i < 2; i++) t.equal((await ping(i % 2 === 0 ? b : a)).status, 200)
  const [before, after] = [new Date(midnight - 1000).toISOString().slice(0, 10), new Date(midnight).toISOString().slice(0, 10)]
  const days = JSON.parse((await send(`${a.adminUrl}/admin/usage?apiKey=k1&from=${before}&to=${after}`, { headers: { authorization: `Bearer ${TOKEN}` } })).body).days
  t.same(days.map((d: { day: string, admitted: number }) => [d.day, d.admitted]), [[before, 3], [after, 2]], 'three before midnight, two after')
  t.equal(upstream.total(), 5)

  const put = await send(`${a.adminUrl}/admin/keys/quota?apiKey=k1`, { method: 'PUT', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ quota: '500/mo' }) })
  t.equal(put.status, 200)
  t.ok(await eventually(async () => JSON.parse((await send(`${b.adminUrl}/admin/keys/quota?apiKey=k1`, { headers: { authorization: `Bearer ${TOKEN}` } })).body).quota === '500/mo', 5000), 'the other instance has the key\'s quota')
  t.match((await ping(b)).headers['ratelimit-policy'], /"free-quota";q=500;/, 'and applies it')
})

t.test('Redis away: the quota endpoint answers 503; a store closing sends the refusals it still holds to the ledger', async t => {
  const redis = await startRedis(t)
  const upstream = await startUpstream(t)
  const env = { UPSTREAM_URL: upstream.url, STORE: 'redis', REDIS_URL: redis.url, REDIS_TIMEOUT_MS: '200', QUOTA_PATH: '/_quota', RATE_LIMIT_TIERS: 'free=1/m:1+100/mo', API_KEYS: 'k1:free' }
  const gw = await startGateway(t, env)
  const call = () => send(`${gw.url}/ping`, { headers: { 'x-api-key': 'k1' } })
  t.equal((await call()).status, 200)
  t.equal((await call()).status, 429, 'refused by Redis (1 a minute)')
  t.equal((await call()).status, 429, 'then by the deny cache, held for the ledger')
  t.equal((await call()).status, 429, 'and another')
  await gw.app.close()
  const line = (await redis.admin.keys('rl:*usage*'))[0]!
  t.same(await redis.admin.hgetall(line), { admitted: '1', refused: '3', cost: '1' }, 'the held refusals written on close')

  const { logger, lines } = captureLogs('warn')
  const again = await startGateway(t, env, { logger })
  await redis.kill()
  for (let i = 0; i < 2; i++) {
    const answer = await send(`${again.url}/_quota`, { headers: { 'x-api-key': 'k1' } })
    t.equal(answer.status, 503)
    t.match(JSON.parse(answer.body), { code: 'GW_STORE_UNAVAILABLE' })
  }
  const said = lines.filter(l => l.msg === 'quota endpoint: the store failed')
  t.equal(said.length, 1, 'the failure is said once, not per request')
  t.match(said[0], { level: 40, listener: 'gateway', err: { message: String } })
})

t.test('the ledger with every key in one slot (a global limit): lines found by day; a line of refusals only; keys not the ledger\'s ignored', async t => {
  const redis = await startRedis(t)
  const upstream = await startUpstream(t)
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, STORE: 'redis', REDIS_URL: redis.url, ADMIN_TOKEN: TOKEN, GLOBAL_RATE_LIMIT_RATE: '1000/s', USAGE_LEDGER: 'true', API_KEYS: 'k1,k2' })
  for (let i = 0; i < 2; i++) await send(`${gw.url}/ping`, { headers: { 'x-api-key': 'k1' } })
  const day = new Date().toISOString().slice(0, 10)
  const [line] = await redis.admin.keys('rl:*usage*')
  t.match(line, new RegExp(`^rl:\\{\\*\\}:usage:${day}:key:`), 'in the one slot, the day before the client')
  await redis.admin.hset(`rl:{*}:usage:${day}:key:only-refused`, 'refused', '3')
  await redis.admin.hset('rl:{*}:usage:1999-01-01:key:old', 'admitted', '99')
  await redis.admin.set('rl:{junk}:usage:not-a-day', '1')
  const top = JSON.parse((await send(`${gw.adminUrl}/admin/usage/top?from=${day}&to=${day}`, { headers: { authorization: `Bearer ${TOKEN}` } })).body)
  t.same(top.clients.map((c: { client: string, admitted: number, refused: number, cost: number }) => [c.client.startsWith('key:only') ? c.client : 'k1', c.admitted, c.refused, c.cost]), [['k1', 2, 0, 2], ['key:only-refused', 0, 3, 0]], 'other days and other keys left out')
})
