import t from 'tap'
import { loadConfig } from '../../src/config/index.js'
import { startUpstream } from '../helpers/upstream.js'
import { startGateway } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'
import { captureLogs } from '../helpers/logs.js'

const TOKEN = 'test-admin-token-0123456789'
const bearer = (token: string) => ({ headers: { authorization: `Bearer ${token}` } })
const PROTECTED = ['/metrics', '/admin/config', '/admin/stats', '/admin/offenders', '/admin/clients?ip=127.0.0.1']

t.test('without ADMIN_TOKEN the admin API is off (and says so); health and readiness stay open', async t => {
  const upstream = await startUpstream(t)
  const { logger, lines } = captureLogs('warn')
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url }, { logger })
  for (const path of [...PROTECTED, '/dashboard']) t.equal((await send(`${gw.adminUrl}${path}`, bearer(TOKEN))).status, 404, `${path}: not served`)
  t.equal((await send(`${gw.adminUrl}/healthz`)).status, 200)
  t.equal((await send(`${gw.adminUrl}/readyz`)).status, 200)
  t.ok(lines.some(l => l.msg === 'ADMIN_TOKEN is not set: the admin API, /metrics and /dashboard are off'), 'the start-up log says so')
})

t.test('with ADMIN_TOKEN: no token and a wrong token get 401, the right one gets in', async t => {
  const upstream = await startUpstream(t)
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, ADMIN_TOKEN: TOKEN })
  for (const path of PROTECTED) {
    const none = await send(`${gw.adminUrl}${path}`)
    t.equal(none.status, 401, `${path}: no token`)
    t.match(JSON.parse(none.body), { status: 401, code: 'GW_ADMIN_UNAUTHORIZED' })
    t.equal(none.headers['www-authenticate'], 'Bearer realm="gateway-admin"')
    t.equal((await send(`${gw.adminUrl}${path}`, bearer(TOKEN + 'x'))).status, 401, `${path}: a longer token`)
    t.equal((await send(`${gw.adminUrl}${path}`, bearer(TOKEN.slice(0, -1)))).status, 401, `${path}: a prefix of the token`)
    t.equal((await send(`${gw.adminUrl}${path}`, { headers: { authorization: TOKEN } })).status, 401, `${path}: the token without "Bearer"`)
    t.equal((await send(`${gw.adminUrl}${path}`, bearer(TOKEN))).status, 200, `${path}: the right token`)
  }
  t.equal((await send(`${gw.adminUrl}/healthz`)).status, 200, 'health needs no token')
  t.equal((await send(`${gw.adminUrl}/dashboard`)).status, 200, 'the dashboard page (static, no data) needs none')
})

t.test('admin paths on the client port are the upstream\'s, never the admin API', async t => {
  const upstream = await startUpstream(t)
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, ADMIN_TOKEN: TOKEN })
  for (const path of ['/metrics', '/admin/config', '/admin/stats', '/dashboard']) {
    const r = await send(`${gw.url}${path}`, bearer(TOKEN))
    t.equal(r.status, 404, `${path} on :8000 answered by the upstream`)
    t.same(JSON.parse(r.body), { message: 'not found' })
    t.equal(upstream.hits.get(path), 1)
  }
})

t.test('the admin listener beyond loopback needs a token; a short token is refused', async t => {
  const base = { UPSTREAM_URL: 'http://127.0.0.1:1' }
  t.throws(() => loadConfig({ ...base, ADMIN_HOST: '0.0.0.0' }), { code: 'GW_CONFIG_INVALID', message: /ADMIN_HOST: "0.0.0.0" is reachable from other hosts; set ADMIN_TOKEN/ })
  t.throws(() => loadConfig({ ...base, ADMIN_HOST: '10.1.2.3' }), { message: /ADMIN_HOST/ })
  t.equal(loadConfig({ ...base, ADMIN_HOST: '0.0.0.0', ADMIN_TOKEN: TOKEN }).adminHost, '0.0.0.0')
  for (const host of ['127.0.0.1', '127.1.2.3', '::1', 'localhost']) t.equal(loadConfig({ ...base, ADMIN_HOST: host }).adminToken, undefined, `${host} without a token`)
  t.throws(() => loadConfig({ ...base, ADMIN_TOKEN: 'short' }), { message: /ADMIN_TOKEN must NOT have fewer than 16 characters/ })
  t.throws(() => loadConfig({ ...base, ADMIN_TOKEN: 'has a space in it 123' }), { message: /ADMIN_TOKEN must match pattern/ })
})

t.test('?client= takes identity keys only: anything else is a 400 naming the forms', async t => {
  const upstream = await startUpstream(t)
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, ADMIN_TOKEN: TOKEN })
  const bad = await send(`${gw.adminUrl}/admin/clients?client=203.0.113.7`, bearer(TOKEN))
  t.equal(bad.status, 400)
  t.match(JSON.parse(bad.body), { code: 'GW_ADMIN_INVALID', detail: /not an identity key \(ip:…, key:…, h:<header>:… or global\)/ })
  const good = await send(`${gw.adminUrl}/admin/clients?client=ip:203.0.113.7`, bearer(TOKEN))
  t.equal(good.status, 200)
})
