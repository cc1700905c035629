import t from 'tap'
import { startUpstream } from '../helpers/upstream.js'
import { startGateway } from '../helpers/gateway.js'
import { send, statuses } from '../helpers/http.js'
import { startRedis } from '../helpers/redis.js'
import { eventually, sleep } from '../helpers/load.js'
import { captureLogs } from '../helpers/logs.js'

const TOKEN = 'test-admin-token-0123456789'
const auth = { authorization: `Bearer ${TOKEN}` }

t.test('with Redis a change on instance A reaches instance B within a second, and an instance started later', async t => {
  const redis = await startRedis(t)
  const upstream = await startUpstream(t)
  const env = { UPSTREAM_URL: upstream.url, ADMIN_TOKEN: TOKEN, STORE: 'redis', REDIS_URL: redis.url, REDIS_TIMEOUT_MS: '1000', RATE_LIMIT_RATE: '1/h', RATE_LIMIT_BURST: '10' }
  const a = await startGateway(t, env)
  const b = await startGateway(t, env)
  const versionOf = async (gw: typeof a) => JSON.parse((await send(`${gw.adminUrl}/admin/config`, { headers: auth })).body).version as number

  const started = performance.now()
  const r = await send(`${a.adminUrl}/admin/config`, { method: 'PATCH', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ limit: { rate: '1/h', burst: 2 } }) })
  t.equal(r.status, 200)
  t.equal(JSON.parse(r.body).version, 1)
  t.ok(await eventually(async () => (await versionOf(b)) === 1, 1000), 'B has version 1 within a second')
  t.comment(`reached B after ${(performance.now() - started).toFixed(0)} ms`)
  t.same(await statuses(`${b.url}/ping`, 3, { from: '127.0.0.2' }), [200, 200, 429], 'B enforces the new burst of 2')

  const c = await startGateway(t, env)
  t.equal(await versionOf(c), 1, 'an instance started later picks the settings up from Redis')
  await c.app.sync!.load()
  t.equal(await versionOf(c), 1, 'checking again changes nothing')
  t.match(JSON.parse((await send(`${c.adminUrl}/admin/config`, { headers: auth })).body), { limits: { default: { burst: 2 } } })

  await send(`${b.adminUrl}/admin/config`, { method: 'DELETE', headers: auth })
  t.ok(await eventually(async () => (await versionOf(a)) === 2 && (await versionOf(c)) === 2, 1000), 'a change on B reaches A and C')
})

t.test('with Redis down a change is refused (503) rather than applied on one instance only', async t => {
  const redis = await startRedis(t)
  const upstream = await startUpstream(t)
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, ADMIN_TOKEN: TOKEN, STORE: 'redis', REDIS_URL: redis.url, REDIS_TIMEOUT_MS: '200' })
  await redis.kill()
  const r = await send(`${gw.adminUrl}/admin/config`, { method: 'PATCH', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ factor: 0.5 }) })
  t.equal(r.status, 503)
  t.match(JSON.parse((await send(`${gw.adminUrl}/admin/config`, { headers: auth })).body), { version: 0, factor: { emergency: 1 } }, 'nothing changed')
})

t.test('settings that do not validate on an instance (other tiers) are refused there and logged; stray messages are ignored', async t => {
  const redis = await startRedis(t)
  const upstream = await startUpstream(t)
  const env = { UPSTREAM_URL: upstream.url, ADMIN_TOKEN: TOKEN, STORE: 'redis', REDIS_URL: redis.url, REDIS_TIMEOUT_MS: '1000' }
  const a = await startGateway(t, { ...env, RATE_LIMIT_TIERS: 'pro=10/s:10' })
  const { logger, lines } = captureLogs()
  const b = await startGateway(t, env, { logger })
  await redis.admin.publish('rl:control', 'not json')
  await redis.admin.publish('rl:control', '{"type":"forget"}')
  const r = await send(`${a.adminUrl}/admin/config`, { method: 'PATCH', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ tiers: { pro: { rate: '1/s', burst: 1 } } }) })
  t.equal(r.status, 200)
  t.ok(await eventually(() => lines.some(l => l.msg === 'runtime settings from the fleet do not validate here; the settings in force stay'), 2000), 'B says why it refuses them')
  t.match(lines.find(l => l.msg === 'runtime settings from the fleet do not validate here; the settings in force stay'), { version: 1, reason: /tiers: "pro" is not a tier/ })
  await sleep(100)
  t.equal(JSON.parse((await send(`${b.adminUrl}/admin/config`, { headers: auth })).body).version, 0, 'B keeps its settings')
  t.equal((await send(`${b.url}/ping`)).status, 200, 'and serves on')
})

t.test('after Redis restarts empty, versions never repeat and the instances converge on one set of settings', async t => {
  const redis = await startRedis(t)
  const upstream = await startUpstream(t)
  const env = { UPSTREAM_URL: upstream.url, ADMIN_TOKEN: TOKEN, STORE: 'redis', REDIS_URL: redis.url, REDIS_TIMEOUT_MS: '1000' }
  const a = await startGateway(t, env)
  const b = await startGateway(t, env)
  const config = async (gw: typeof a) => JSON.parse((await send(`${gw.adminUrl}/admin/config`, { headers: auth })).body)
  const patch = (gw: typeof a, body: unknown) => send(`${gw.adminUrl}/admin/config`, { method: 'PATCH', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify(body) })

  t.equal((await patch(a, { factor: 0.5 })).status, 200)
  t.ok(await eventually(async () => (await config(b)).factor.emergency === 0.5, 2000), 'B applies factor 0.5')
  await redis.kill()
  await redis.restart() // no persistence: the stored version and settings are gone
  t.ok(await eventually(async () => (await redis.admin.get('rl:{control}:version')) === '1', 10_000), 'an instance that kept version 1 stores it again')
  t.match(await config(a), { fleet: { storedVersion: 1, inSync: true } })

  const r = await patch(a, { factor: null })
  t.equal(r.status, 200)
  t.equal(JSON.parse(r.body).version, 2, 'the next change is version 2, never a repeat of 1')
  t.ok(await eventually(async () => (await config(b)).factor.emergency === 1, 2000), 'B applies the change (it never did before)')
  t.match(await config(b), { version: 2, fleet: { storedVersion: 2, inSync: true } })
})

t.test('an instance whose settings differ from the fleet\'s at the same version takes the fleet\'s, and says so', async t => {
  const redis = await startRedis(t)
  const upstream = await startUpstream(t)
  const env = { UPSTREAM_URL: upstream.url, ADMIN_TOKEN: TOKEN, STORE: 'redis', REDIS_URL: redis.url, REDIS_TIMEOUT_MS: '1000' }
  const { logger, lines } = captureLogs()
  const a = await startGateway(t, env, { logger })
  // Drift made by hand: version 1 applied here, other settings stored in Redis.
  a.app.manager.apply({ factor: 0.5 }, 1)
  await redis.admin.set('rl:{control}:version', '1')
  await redis.admin.set('rl:{control}:settings', JSON.stringify({ version: 1, settings: { factor: 0.25 }, actor: 'other', at: new Date().toISOString() }))
  await a.app.sync!.load()
  t.equal(a.app.manager.runtimeSettings.factor, 0.25, 'the fleet\'s settings win')
  t.ok(lines.some(l => /differ from the fleet's of the same version/.test(String(l.msg))), 'logged as a warning')
  // Redis older than what is in force here: ours are put back.
  await redis.admin.set('rl:{control}:version', '0')
  await redis.admin.del('rl:{control}:settings')
  await a.app.sync!.load()
  t.equal(await redis.admin.get('rl:{control}:version'), '1')
  t.match(JSON.parse((await redis.admin.get('rl:{control}:settings'))!), { version: 1, settings: { factor: 0.25 } })
  t.match(await a.app.sync!.status, { storedVersion: 1, inSync: true })
  // Settings this instance never stored nor read (applied here by hand): stored as they are.
  a.app.manager.apply({ dryRun: true }, 3)
  await a.app.sync!.load()
  t.match(JSON.parse((await redis.admin.get('rl:{control}:settings'))!), { version: 3, settings: { dryRun: true }, actor: 'reseed' })
})

t.test('a fresh instance on an empty Redis has nothing to store or apply', async t => {
  const redis = await startRedis(t)
  const gw = await startGateway(t, { UPSTREAM_URL: 'http://127.0.0.1:9', ADMIN_TOKEN: TOKEN, STORE: 'redis', REDIS_URL: redis.url, REDIS_TIMEOUT_MS: '1000' })
  await gw.app.sync!.load()
  t.match(gw.app.sync!.status, { storedVersion: null, inSync: true })
  t.equal(await redis.admin.get('rl:{control}:settings'), null)
})
