/**
 * Regression: an admin write answered 503 while Redis was stalled (SIGSTOP) was applied
 * anyway once Redis woke up, on every instance. A write is now applied and answered 2xx,
 * or refused (503 GW_ADMIN_WRITE_FAILED, naming the write) and never applied.
 */
import t from 'tap'
import { startUpstream } from '../helpers/upstream.js'
import { startGateway } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'
import { startRedis } from '../helpers/redis.js'
import { eventually, sleep } from '../helpers/load.js'
import { ADMIN_WRITE_MIN_MS, writeBefore } from '../../src/store/redis/admin-write.js'
import { BAN_LUA } from '../../src/store/redis/admin-scripts.js'

const TOKEN = 'test-admin-token-0123456789'
const auth = { authorization: `Bearer ${TOKEN}` }
const json = { ...auth, 'content-type': 'application/json' }

t.test('with Redis stalled, a settings change and a ban answer 503 naming the write, and neither is ever applied', async t => {
  const redis = await startRedis(t)
  const upstream = await startUpstream(t)
  const env = { UPSTREAM_URL: upstream.url, ADMIN_TOKEN: TOKEN, STORE: 'redis', REDIS_URL: redis.url, REDIS_TIMEOUT_MS: '200' }
  const a = await startGateway(t, env)
  const b = await startGateway(t, env)

  redis.pause()
  t.teardown(() => redis.resume())
  const started = performance.now()
  const [patch, ban] = await Promise.all([
    send(`${a.adminUrl}/admin/config`, { method: 'PATCH', headers: json, body: JSON.stringify({ factor: 0.2, dryRun: true }) }),
    send(`${a.adminUrl}/admin/clients/ban?ip=1.2.3.4`, { method: 'PUT', headers: json, body: JSON.stringify({ duration: '1h' }) })
  ])
  const waited = performance.now() - started
  t.equal(patch.status, 503)
  t.equal(ban.status, 503)
  t.match(JSON.parse(patch.body), { code: 'GW_ADMIN_WRITE_FAILED', title: 'Service Unavailable', detail: /the settings change .*not applied/ })
  t.match(JSON.parse(ban.body), { code: 'GW_ADMIN_WRITE_FAILED', detail: /the ban of ip:1\.2\.3\.4 .*not applied/ })
  t.ok(waited >= ADMIN_WRITE_MIN_MS * 0.9, `an admin write waits its own budget, not REDIS_TIMEOUT_MS (${waited.toFixed(0)} ms)`)

  // Longer than the budget: whatever reached Redis's socket runs now, and must change nothing.
  await sleep(Math.max(0, 2000 - (performance.now() - started)))
  redis.resume()
  t.ok(await eventually(async () => (await redis.admin.ping()) === 'PONG', 5000), 'Redis answers again')
  const config = async (gw: typeof a) => JSON.parse((await send(`${gw.adminUrl}/admin/config`, { headers: auth })).body)
  const banned = async (gw: typeof a) => JSON.parse((await send(`${gw.adminUrl}/admin/clients?ip=1.2.3.4`, { headers: auth })).body).bannedMs as number
  await a.app.sync!.load()
  await b.app.sync!.load()
  for (const [name, gw] of [['A', a], ['B', b]] as const) {
    t.match(await config(gw), { version: 0, dryRun: false, factor: { emergency: 1 } }, `${name}: the settings did not change`)
    t.equal(await banned(gw), 0, `${name}: the client is not banned`)
  }
  t.equal(await redis.admin.get('rl:{control}:settings'), null, 'Redis holds no settings')
  t.same(await redis.admin.keys('*ban*'), [], 'and no ban')

  // The same writes with Redis awake are applied and answered.
  t.equal((await send(`${a.adminUrl}/admin/clients/ban?ip=1.2.3.4`, { method: 'PUT', headers: json, body: '{"duration":"1h"}' })).status, 204)
  t.ok(await banned(b) > 0, 'a ban answered 204 is in force on B')
  t.equal((await send(`${a.adminUrl}/admin/clients/ban?ip=1.2.3.4`, { method: 'DELETE', headers: auth })).status, 204)
  t.equal(await banned(b), 0, 'and an unban answered 204 too')
})

t.test('a write that reaches Redis after its deadline is refused by the script and writes nothing', async t => {
  const redis = await startRedis(t)
  const now = Number((await redis.admin.time())[0]) * 1000
  await t.rejects(writeBefore(redis.admin, now - 1, BAN_LUA, ['k:ban', 'k:ban-count'], ['', 60_000], 1000), /GW_LATE/)
  t.equal(await redis.admin.exists('k:ban'), 0, 'nothing written')
  t.equal(await writeBefore(redis.admin, now + 60_000, BAN_LUA, ['k:ban', 'k:ban-count'], ['', 60_000], 1000), 1)
  t.equal(await redis.admin.exists('k:ban'), 1, 'in time, the write is applied')
})
