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
