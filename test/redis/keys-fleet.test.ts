/**
 * API keys managed live across a fleet: two instances on one Redis. A key made on one works
 * on the other within a second, with its tier; retiered, rotated and deleted there too; a
 * deleted or expired key buys nothing anywhere.
 */
import t from 'tap'
import { startGateway } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'
import { startRedis } from '../helpers/redis.js'
import { startUpstream } from '../helpers/upstream.js'

const TOKEN = 'keys-fleet-admin-token-0123456789'
const AUTH = { authorization: `Bearer ${TOKEN}` }
const JSON_BODY = { ...AUTH, 'content-type': 'application/json' }

/** Waits (up to `ms`) until `check` holds; says how long it took. */
async function within (ms: number, check: () => Promise<boolean>): Promise<number> {
  const started = Date.now()
  while (!(await check())) {
    if (Date.now() - started > ms) return Infinity
    await new Promise(resolve => setTimeout(resolve, 20))
  }
  return Date.now() - started
}

t.test('made on one instance, in force on the other within a second', async t => {
  const redis = await startRedis(t)
  const upstream = await startUpstream(t)
  const env = { UPSTREAM_URL: upstream.url, STORE: 'redis', REDIS_URL: redis.url, ADMIN_TOKEN: TOKEN, RATE_LIMIT_RATE: '1/h', RATE_LIMIT_BURST: '2', RATE_LIMIT_TIERS: 'pro=1/h:5' }
  const a = await startGateway(t, env)
  const b = await startGateway(t, env)
  const policyOn = async (gw: typeof a, key: string): Promise<string | undefined> => (await send(`${gw.url}/ping`, { headers: { 'x-api-key': key } })).headers['ratelimit-policy'] as string | undefined

  const made = JSON.parse((await send(`${a.adminUrl}/admin/keys`, { method: 'POST', headers: JSON_BODY, body: '{"name":"acme","tier":"pro"}' })).body) as { id: string, key: string }
  t.ok(await within(1000, async () => await policyOn(b, made.key) === '"pro";q=5;w=18000') < 1000, 'B knows the key and its tier within a second')
  t.match(JSON.parse((await send(`${b.adminUrl}/admin/keys`, { headers: AUTH })).body), { keys: [{ id: made.id, name: 'acme', tier: 'pro' }] }, 'and lists it')

  await send(`${b.adminUrl}/admin/keys/${made.id}`, { method: 'PATCH', headers: JSON_BODY, body: '{"tier":null}' })
  t.ok(await within(1000, async () => await policyOn(a, made.key) === '"default";q=2;w=7200') < 1000, 'retiered on B: A follows within a second')

  const rotated = JSON.parse((await send(`${a.adminUrl}/admin/keys/${made.id}/rotate`, { method: 'POST', headers: JSON_BODY, body: '{"graceSeconds":0}' })).body) as { key: string }
  t.ok(await within(1000, async () => (await send(`${b.url}/ping`, { headers: { 'x-api-key': rotated.key } })).headers['x-ratelimit-remaining'] !== undefined && await policyOn(b, rotated.key) === '"default";q=2;w=7200') < 1000, 'the rotated key works on B')
  // With no grace the old key buys nothing: its requests fall to the address's bucket (127.0.0.1's, shared with nothing else here).
  const oldOnB = await send(`${b.url}/ping`, { from: '127.0.0.9', headers: { 'x-api-key': made.key } })
  t.equal(oldOnB.headers['x-ratelimit-remaining'], '1', 'the old key names no one on B')

  t.equal((await send(`${b.adminUrl}/admin/keys/${made.id}`, { method: 'DELETE', headers: AUTH })).status, 204)
  t.ok(await within(1000, async () => (await send(`${a.url}/ping`, { from: '127.0.0.8', headers: { 'x-api-key': rotated.key } })).headers['x-ratelimit-remaining'] === '1') < 1000, 'deleted on B: buys nothing on A within a second')
  t.same(JSON.parse((await send(`${a.adminUrl}/admin/keys`, { headers: AUTH })).body), { keys: [] })

  const expiring = JSON.parse((await send(`${a.adminUrl}/admin/keys`, { method: 'POST', headers: JSON_BODY, body: JSON.stringify({ name: 'trial', expiresAt: new Date(Date.now() - 1000).toISOString() }) })).body) as { key: string }
  t.equal((await send(`${b.url}/ping`, { from: '127.0.0.7', headers: { 'x-api-key': expiring.key } })).headers['x-ratelimit-remaining'], '1', 'an expired key buys nothing anywhere')
})
