/**
 * API keys managed live on one instance: made (shown once, `gw_`), used with their tier,
 * listed without the key, retiered, expired, rotated (the old key valid through its
 * grace), deleted; kept in API_KEYS_STATE_FILE (written atomically) and back after a
 * restart; API_KEYS keeps working beside them.
 */
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { ManualClock } from '../../src/core/clock.js'
import { apiKeyId } from '../../src/identity/identify.js'
import { loadConfig } from '../../src/config/index.js'
import { startGateway } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'
import { startUpstream } from '../helpers/upstream.js'

const TOKEN = 'keys-test-admin-token-0123456789'
const A = { authorization: `Bearer ${TOKEN}` }
const JSON_BODY = { ...A, 'content-type': 'application/json' }
const START = 1_800_000_000_000

t.test('made, used, listed, changed, rotated, expired, deleted; kept in a state file', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'gw-keys-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const stateFile = join(dir, 'keys.json')
  const upstream = await startUpstream(t)
  const clock = new ManualClock(START)
  const env = { UPSTREAM_URL: upstream.url, ADMIN_TOKEN: TOKEN, RATE_LIMIT_RATE: '1/h', RATE_LIMIT_BURST: '2', RATE_LIMIT_TIERS: 'pro=1/h:5', API_KEYS: 'static-key-1:pro', API_KEYS_STATE_FILE: stateFile }
  const gw = await startGateway(t, env, { clock })
  const admin = (method: string, path: string, body?: unknown) => send(`${gw.adminUrl}${path}`, body === undefined ? { method, headers: A } : { method, headers: JSON_BODY, body: JSON.stringify(body) })
  const use = (key: string, from = '127.0.0.2') => send(`${gw.url}/ping`, { from, headers: { 'x-api-key': key } })

  const made = await admin('POST', '/admin/keys', { name: 'acme', tier: 'pro' })
  t.equal(made.status, 201)
  const acme = JSON.parse(made.body) as { id: string, key: string, prefix: string, client: string, tier: string, createdAt: string }
  t.match(acme, { id: /^k_/, key: /^gw_[A-Za-z0-9_-]{32}$/, name: 'acme', tier: 'pro', createdAt: new Date(START).toISOString(), expiresAt: null })
  t.equal(acme.prefix, acme.key.slice(0, 7))
  t.equal(acme.client, apiKeyId(acme.key), 'its client key: the digest, as an API_KEYS key\'s')
  const r1 = await use(acme.key)
  t.equal(r1.headers['ratelimit-policy'], '"pro";q=5;w=18000', 'used at once, with its tier')
  t.equal((await use(acme.key, '127.0.0.3')).headers['x-ratelimit-remaining'], '3', 'one bucket whatever the address')
  t.equal((await use('static-key-1')).headers['ratelimit-policy'], '"pro";q=5;w=18000', 'API_KEYS keeps working beside')
  t.equal((await use('gw_made-up-key-0000000000000000000')).headers['ratelimit-policy'], '"default";q=2;w=7200', 'a made-up key buys nothing')

  const listed = JSON.parse((await admin('GET', '/admin/keys')).body) as { keys: Array<Record<string, unknown>> }
  t.match(listed.keys, [{ id: acme.id, name: 'acme', tier: 'pro', prefix: acme.prefix, client: acme.client, lastSeenAt: new Date(START).toISOString(), previousKeyValidUntil: null }])
  t.notOk(JSON.stringify(listed).includes(acme.key), 'never the key')
  const state = readFileSync(stateFile, 'utf8')
  t.notOk(state.includes(acme.key), 'the state file keeps the digest, never the key')
  t.same(readdirSync(dir), ['keys.json'], 'written by a rename: no temporary file left')
  t.match(JSON.parse((await admin('GET', '/admin/config')).body), { settings: { apiKeys: 1 } }, 'the config shows how many, not which')

  const patched = await admin('PATCH', `/admin/keys/${acme.id}`, { tier: null, name: 'acme-inc' })
  t.match(JSON.parse(patched.body), { name: 'acme-inc', tier: null })
  t.match(JSON.parse((await admin('PATCH', `/admin/keys/${acme.id}`, { expiresAt: '2099-01-01T00:00:00Z' })).body), { name: 'acme-inc', expiresAt: '2099-01-01T00:00:00Z' })
  t.match(JSON.parse((await admin('PATCH', `/admin/keys/${acme.id}`, { expiresAt: null })).body), { expiresAt: null }, 'null: never expires')
  t.equal((await use(acme.key)).headers['ratelimit-policy'], '"default";q=2;w=7200', 'retiered at once: the default limit')

  // Rotation: a new key; the old one valid through its grace, then nothing.
  const rotated = JSON.parse((await admin('POST', `/admin/keys/${acme.id}/rotate`, { graceSeconds: 60 })).body) as { key: string, id: string, previousKeyValidUntil: string }
  t.equal(rotated.id, acme.id, 'the same key id')
  t.not(rotated.key, acme.key)
  t.equal(rotated.previousKeyValidUntil, new Date(START + 60_000).toISOString())
  t.equal((await use(rotated.key, '127.0.0.4')).headers['ratelimit-policy'], '"default";q=2;w=7200', 'the new key works')
  t.not((await use(acme.key, '127.0.0.5')).headers['x-ratelimit-remaining'], '1', 'the old one too, for now: its own bucket, not the address\'s')
  t.match(JSON.parse((await admin('GET', '/admin/keys')).body), { keys: [{ id: acme.id, prefix: rotated.key.slice(0, 7), previousKeyValidUntil: new Date(START + 60_000).toISOString() }] })
  clock.advance(60_000)
  t.equal((await use(acme.key, '127.0.0.6')).headers['x-ratelimit-remaining'], '1', 'past the grace the old key names no one: the address does')
  const again = JSON.parse((await admin('POST', `/admin/keys/${acme.id}/rotate`)).body) as { key: string, previousKeyValidUntil: string }
  t.equal(again.previousKeyValidUntil, new Date(START + 60_000 + 86_400_000).toISOString(), 'the default grace: a day')

  // Expiry.
  const temp = JSON.parse((await admin('POST', '/admin/keys', { name: 'trial', expiresAt: new Date(START + 120_000).toISOString() })).body) as { key: string, id: string }
  t.equal((await use(temp.key, '127.0.0.7')).headers['x-ratelimit-remaining'], '1', 'before it expires: its own bucket')
  t.equal((await use(temp.key, '127.0.0.7')).headers['x-ratelimit-remaining'], '0')
  clock.advance(60_000)
  t.equal((await use(temp.key, '127.0.0.8')).headers['x-ratelimit-remaining'], '1', 'expired: the address names the client')

  // Restart: the keys come back from the state file.
  await gw.app.close()
  const back = await startGateway(t, env, { clock })
  t.equal((await send(`${back.url}/ping`, { from: '127.0.0.9', headers: { 'x-api-key': rotated.key } })).headers['ratelimit-policy'], '"default";q=2;w=7200')
  const backList = JSON.parse((await send(`${back.adminUrl}/admin/keys`, { headers: A })).body) as { keys: Array<{ name: string }> }
  t.same(backList.keys.map(k => k.name).sort(), ['acme-inc', 'trial'], 'after a restart')

  // Delete: buys nothing at once.
  t.equal((await send(`${back.adminUrl}/admin/keys/${temp.id}`, { method: 'DELETE', headers: A })).status, 204)
  t.equal((await send(`${back.adminUrl}/admin/keys/${acme.id}`, { method: 'DELETE', headers: A })).status, 204)
  t.equal((await send(`${back.url}/ping`, { from: '127.0.0.10', headers: { 'x-api-key': again.key } })).headers['x-ratelimit-remaining'], '1', 'a deleted key names no one at once: the address does')
  t.same(JSON.parse((await send(`${back.adminUrl}/admin/keys`, { headers: A })).body), { keys: [] })
  t.equal((await send(`${back.adminUrl}/admin/keys/${acme.id}`, { method: 'DELETE', headers: A })).status, 404, 'an unknown id')
})

t.test('what the key API refuses', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'gw-keys-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const upstream = await startUpstream(t)
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, ADMIN_TOKEN: TOKEN, RATE_LIMIT_TIERS: 'pro=1/h:5' })
  const admin = (method: string, path: string, body?: unknown) => send(`${gw.adminUrl}${path}`, body === undefined ? { method, headers: A } : { method, headers: JSON_BODY, body: JSON.stringify(body) })
  t.match(JSON.parse((await admin('POST', '/admin/keys', { name: 'x', tier: 'gold' })).body), { status: 400, detail: /tier: "gold" is not defined in RATE_LIMIT_TIERS \(defined: pro\)/ })
  t.match(JSON.parse((await admin('POST', '/admin/keys', { name: 'x', expiresAt: 'tomorrow' })).body), { status: 400, detail: /expiresAt: "tomorrow" is not an ISO 8601 time/ })
  t.equal((await admin('POST', '/admin/keys', {})).status, 400, 'a name is required')
  t.equal((await admin('PATCH', '/admin/keys/k_unknown123', { name: 'y' })).status, 404)
  t.equal((await admin('PATCH', '/admin/keys/not-an-id', { name: 'y' })).status, 400)
  t.equal((await admin('POST', '/admin/keys/k_unknown123/rotate', {})).status, 404)
  t.match(JSON.parse((await admin('POST', '/admin/keys/k_unknown123/rotate', { graceSeconds: -1 })).body), { status: 400, detail: /graceSeconds: a whole number of seconds from 0 to 2592000/ })
  const made = JSON.parse((await admin('POST', '/admin/keys', { name: 'x' })).body) as { id: string, key: string }
  t.equal((await admin('PATCH', `/admin/keys/${made.id}`, {})).status, 400, 'a change must change something')
  t.match(JSON.parse((await admin('GET', `/admin/clients?apiKey=${made.key}`)).body), { client: apiKeyId(made.key) }, 'the admin API finds a made key by its key')
  t.equal((await admin('GET', '/admin/clients?apiKey=gw_nothing')).status, 404)
  t.equal((await send(`${gw.adminUrl}/admin/keys`, {})).status, 401, 'behind ADMIN_TOKEN')
  const tierless = await startGateway(t, { UPSTREAM_URL: upstream.url, ADMIN_TOKEN: TOKEN })
  t.match(JSON.parse((await send(`${tierless.adminUrl}/admin/keys`, { method: 'POST', headers: JSON_BODY, body: '{"name":"x","tier":"pro"}' })).body), { detail: /tier: "pro" is not defined in RATE_LIMIT_TIERS \(defined: none\)/ })

  t.throws(() => loadConfig({ UPSTREAM_URL: upstream.url, STORE: 'redis', API_KEYS_STATE_FILE: join(dir, 'k.json') }), /API_KEYS_STATE_FILE: with STORE=redis the keys made through the admin API live in Redis/)
  // A state file that cannot be read, or does not validate, stops the start.
  const bad = join(dir, 'bad.json')
  writeFileSync(bad, '{"keys": {"nope": {}}}')
  await t.rejects(startGateway(t, { UPSTREAM_URL: upstream.url, API_KEYS_STATE_FILE: bad }), /API_KEYS_STATE_FILE: .*bad\.json: apiKeys: "nope" is not an API key's client key/)
  writeFileSync(bad, 'not json')
  await t.rejects(startGateway(t, { UPSTREAM_URL: upstream.url, API_KEYS_STATE_FILE: bad }), /API_KEYS_STATE_FILE: .*bad\.json: /)
  writeFileSync(bad, '{}')
  await t.rejects(startGateway(t, { UPSTREAM_URL: upstream.url, API_KEYS_STATE_FILE: bad }), /expected \{"version": 1, "keys"/)
  await t.rejects(startGateway(t, { UPSTREAM_URL: upstream.url, API_KEYS_STATE_FILE: dir }), /API_KEYS_STATE_FILE: EISDIR/)
  t.notOk(existsSync(join(dir, 'fresh.json')))
  const fresh = await startGateway(t, { UPSTREAM_URL: upstream.url, API_KEYS_STATE_FILE: join(dir, 'fresh.json') })
  t.ok(fresh.app, 'no file yet: no keys, and the start goes on')
})
