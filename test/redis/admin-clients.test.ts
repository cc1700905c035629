import t from 'tap'
import { startUpstream } from '../helpers/upstream.js'
import { startGateway } from '../helpers/gateway.js'
import { send, statuses } from '../helpers/http.js'
import { startRedis } from '../helpers/redis.js'
import { apiKeyId } from '../../src/identity/identify.js'
import { eventually } from '../helpers/load.js'
import { captureLogs } from '../helpers/logs.js'

const TOKEN = 'test-admin-token-0123456789'
const as = (method: string, body?: unknown) => ({
  method, headers: { authorization: `Bearer ${TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, ...(body === undefined ? {} : { body: JSON.stringify(body) })
}) as never

for (const store of ['memory', 'redis'] as const) {
  t.test(`${store}: inspect a client, reset its quota, ban and unban it`, async t => {
    const upstream = await startUpstream(t)
    const redisEnv: Record<string, string> = store === 'redis' ? { STORE: 'redis', REDIS_URL: (await startRedis(t)).url, REDIS_TIMEOUT_MS: '1000' } : {}
    const env = { UPSTREAM_URL: upstream.url, ADMIN_TOKEN: TOKEN, RATE_LIMIT_RATE: '1/h', RATE_LIMIT_BURST: '3', API_KEYS: 'secret-1', RATE_LIMIT_BAN_AFTER: '5', ...redisEnv }
    const a = await startGateway(t, env)
    // With Redis, a second instance: resets and unbans must reach its deny cache too.
    const b = store === 'redis' ? await startGateway(t, env) : a
    const admin = (path: string, method = 'GET', body?: unknown) => send(`${a.adminUrl}${path}`, as(method, body))

    t.same(await statuses(`${a.url}/ping`, 5, { from: '127.0.0.2' }), [200, 200, 200, 429, 429])
    t.equal((await send(`${b.url}/ping`, { from: '127.0.0.2' })).status, 429, 'B refuses too')
    const seen = JSON.parse((await admin('/admin/clients?ip=127.0.0.2')).body)
    t.match(seen, { client: 'ip:127.0.0.2', tier: null, bannedMs: 0, refusals: 3, limits: [{ policy: 'default', algorithm: 'token-bucket', remaining: 0 }] })
    t.ok(seen.limits[0].resetMs > 3 * 3_600_000 - 60_000, `full again in ${seen.limits[0].resetMs} ms (3 tokens at 1/h)`)
    t.same(JSON.parse((await admin('/admin/clients?client=ip:127.0.0.2')).body).client, 'ip:127.0.0.2', 'by identity key too')

    t.equal((await admin('/admin/clients/quota?ip=127.0.0.2', 'DELETE')).status, 204)
    t.match(JSON.parse((await admin('/admin/clients?ip=127.0.0.2')).body), { refusals: 0, limits: [{ remaining: 3 }] }, 'reset: a full quota')
    t.ok(await eventually(async () => (await send(`${b.url}/ping`, { from: '127.0.0.2' })).status === 200, 1000), 'B admits, within a second')

    t.equal((await admin('/admin/clients/ban?apiKey=secret-1', 'PUT', { duration: '10m' })).status, 204)
    const banned = await send(`${b.url}/ping`, { from: '127.0.0.3', headers: { 'x-api-key': 'secret-1' } })
    t.equal(banned.status, 403, 'banned by key, from anywhere, on every instance')
    t.equal(banned.headers['retry-after'], '600')
    const bannedMs = JSON.parse((await admin(`/admin/clients?client=${apiKeyId('secret-1')}`)).body).bannedMs
    t.ok(Number.isInteger(bannedMs) && bannedMs > 590_000 && bannedMs <= 600_000, `whole milliseconds of ban left: ${bannedMs}`)
    t.equal((await admin('/admin/clients/ban?apiKey=secret-1', 'DELETE')).status, 204)
    // B remembered the ban (it refused locally); the unban tells it to forget.
    t.ok(await eventually(async () => (await send(`${b.url}/ping`, { from: '127.0.0.3', headers: { 'x-api-key': 'secret-1' } })).status === 200, 1000), 'unbanned, everywhere, within a second')

    t.equal((await admin('/admin/clients?ip=not-an-ip')).status, 400)
    t.equal((await admin('/admin/clients?apiKey=nope')).status, 404)
    t.equal((await admin('/admin/clients')).status, 400, 'a client must be named')
    t.equal((await admin('/admin/clients/ban?ip=127.0.0.9', 'PUT', { duration: 'forever' })).status, 400)
  })
}

t.test('with limiting off there are no clients, no store and nothing tracked', async t => {
  const upstream = await startUpstream(t)
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, ADMIN_TOKEN: TOKEN, RATE_LIMIT_ENABLED: 'false' })
  t.equal((await send(`${gw.adminUrl}/admin/clients?ip=127.0.0.1`, as('GET'))).status, 404)
  t.match(JSON.parse((await send(`${gw.adminUrl}/admin/stats`, as('GET'))).body), { store: null })
  t.match((await send(`${gw.adminUrl}/metrics`, as('GET'))).body, /^gateway_tracked_clients 0$/m)
})

t.test('with Redis down, client operations answer 503, like the requests; a write says it was not applied', async t => {
  const redis = await startRedis(t)
  const upstream = await startUpstream(t)
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, ADMIN_TOKEN: TOKEN, STORE: 'redis', REDIS_URL: redis.url, REDIS_TIMEOUT_MS: '200' })
  await redis.kill()
  const cases = [
    ['/admin/clients?ip=127.0.0.2', 'GET', { code: 'GW_STORE_UNAVAILABLE' }],
    ['/admin/clients/quota?ip=127.0.0.2', 'DELETE', { code: 'GW_ADMIN_WRITE_FAILED', detail: /the reset of ip:127\.0\.0\.2 .*not applied/ }],
    ['/admin/clients/ban?ip=127.0.0.2', 'DELETE', { code: 'GW_ADMIN_WRITE_FAILED', detail: /the unban of ip:127\.0\.0\.2 .*not applied/ }]
  ] as const
  for (const [path, method, problem] of cases) {
    const r = await send(`${gw.adminUrl}${path}`, as(method))
    t.equal(r.status, 503, `${method} ${path}`)
    t.match(JSON.parse(r.body), problem)
  }
})

t.test('an instance that cannot hear the fleet\'s channel still drops a reset client\'s denial at its next check, and subscribes once it may', async t => {
  const redis = await startRedis(t)
  const upstream = await startUpstream(t)
  // B connects as a user that may not use any pub/sub channel (as an ACL change, or a first
  // connection that failed, would leave it): it never hears an announcement.
  await redis.admin.call('ACL', 'SETUSER', 'deaf', 'on', '>deaf-password', '~*', '+@all', 'resetchannels')
  const env = { UPSTREAM_URL: upstream.url, ADMIN_TOKEN: TOKEN, STORE: 'redis', REDIS_TIMEOUT_MS: '1000', RATE_LIMIT_RATE: '1/h', RATE_LIMIT_BURST: '2' }
  const a = await startGateway(t, { ...env, REDIS_URL: redis.url })
  const { logger, lines } = captureLogs()
  const b = await startGateway(t, { ...env, REDIS_URL: `redis://deaf:deaf-password@127.0.0.1:${redis.port}` }, { logger })
  t.match(lines.find(l => l.msg === 'settings sync: could not subscribe yet; checking the stored version periodically'), { err: { message: /NOPERM/ } }, 'B says at start it could not subscribe, and why')
  const listeners = async (): Promise<number> => ((await redis.admin.call('PUBSUB', 'NUMSUB', 'rl:control')) as [string, number])[1]
  t.equal(await listeners(), 1, 'only A listens')
  t.same(await statuses(`${b.url}/ping`, 3, { from: '127.0.0.2' }), [200, 200, 429], 'B refuses, and remembers the denial')

  t.equal((await send(`${a.adminUrl}/admin/clients/quota?ip=127.0.0.2`, as('DELETE'))).status, 204)
  t.equal((await send(`${b.url}/ping`, { from: '127.0.0.2' })).status, 429, 'B did not hear the reset: its remembered denial answers')
  await b.app.sync!.load()
  t.equal((await send(`${b.url}/ping`, { from: '127.0.0.2' })).status, 200, 'its settings check saw a reset was made, and it asked Redis again')

  // Allowed again, and reconnected: it subscribes by itself.
  await redis.admin.call('ACL', 'SETUSER', 'deaf', 'allchannels')
  // Its subscriber's connection (the one whose last command, SUBSCRIBE, was refused).
  const list = String(await redis.admin.call('CLIENT', 'LIST'))
  const refused = [...list.matchAll(/^id=(\d+)(?=.* cmd=subscribe )(?=.* user=deaf )/gm)].map(m => m[1]!)
  t.equal(refused.length, 1, 'B tried to subscribe')
  await redis.admin.call('CLIENT', 'KILL', 'ID', refused[0]!)
  t.ok(await eventually(async () => (await listeners()) === 2, 5000), 'B listens once reconnected')
  t.same(await statuses(`${b.url}/ping`, 2, { from: '127.0.0.2' }), [200, 429], 'B refuses again')
  t.equal((await send(`${a.adminUrl}/admin/clients/quota?ip=127.0.0.2`, as('DELETE'))).status, 204)
  t.ok(await eventually(async () => (await send(`${b.url}/ping`, { from: '127.0.0.2' })).status === 200, 1000), 'and hears the next reset at once (well before its next check)')
})
