/**
 * Quotas (RATE_LIMIT_QUOTA, a tier's `+N/mo`, per-key overrides) on the memory store and a
 * manual clock: calendar months, raised mid-period without losing the count, overridden per
 * key; refusals never count against a quota.
 */
import t from 'tap'
import { ManualClock } from '../../src/core/clock.js'
import { loadConfig } from '../../src/config/index.js'
import { startGateway, type TestGateway } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'
import { startUpstream } from '../helpers/upstream.js'

const TOKEN = 'test-admin-token-0123456789'
const admin = (gw: TestGateway, method: string, path: string, body?: unknown) => send(`${gw.adminUrl}${path}`, {
  method: method as never,
  headers: body === undefined ? { authorization: `Bearer ${TOKEN}` } : { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
  ...(body === undefined ? {} : { body: JSON.stringify(body) })
})
const call = (gw: TestGateway, key: string) => send(`${gw.url}/ping`, { headers: { 'x-api-key': key } })

t.test('a tier\'s monthly quota: spent, refused with the quota named, back on the 1st', async t => {
  const upstream = await startUpstream(t)
  const clock = new ManualClock(Date.UTC(2026, 10, 30, 23, 59))
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, RATE_LIMIT_TIERS: 'free=100/s:100+3/mo', API_KEYS: 'k1:free' }, { clock })
  const first = await call(gw, 'k1')
  t.equal(first.status, 200)
  t.match(first.headers['ratelimit-policy'], /"free-quota";q=3;w=2592000/, 'the quota in RateLimit-Policy')
  t.match(first.headers['ratelimit'], /"free-quota";r=2;t=60/, 'and in RateLimit: 2 left, 60 s to the 1st')
  t.equal((await call(gw, 'k1')).status, 200)
  t.equal((await call(gw, 'k1')).status, 200)
  const over = await call(gw, 'k1')
  t.equal(over.status, 429, 'the 4th in November')
  t.match(JSON.parse(over.body), { policy: 'free-quota', retryAfter: 60 })
  t.equal((await call(gw, 'k1')).status, 429, 'refusals do not count, and do not end the month early')
  clock.set(Date.UTC(2026, 11, 1))
  const december = await call(gw, 'k1')
  t.equal(december.status, 200, '1 December: a new quota')
  t.match(december.headers['ratelimit'], /"free-quota";r=2;t=2678400/, '31 days to the next')
  t.equal(upstream.total(), 4)
})

t.test('raising a tier\'s quota mid-month frees its customers at once, keeping the count', async t => {
  const upstream = await startUpstream(t)
  const clock = new ManualClock(Date.UTC(2026, 10, 15))
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, RATE_LIMIT_TIERS: 'free=100/s:100+3/mo', API_KEYS: 'k1:free', ADMIN_TOKEN: TOKEN }, { clock })
  for (let i = 0; i < 3; i++) t.equal((await call(gw, 'k1')).status, 200)
  t.equal((await call(gw, 'k1')).status, 429, 'quota spent')
  const patched = await admin(gw, 'PATCH', '/admin/config', { tiers: { free: { rate: '100/s', burst: 100, quota: '5/mo' } } })
  t.equal(patched.status, 200, patched.body)
  t.same(JSON.parse(patched.body).limits.tiers.free, { rate: '100/s', burst: 100, quota: '5/mo' })
  t.equal((await call(gw, 'k1')).status, 200, 'the upgrade applies at once')
  t.equal((await call(gw, 'k1')).status, 200, '5 of 5: the 3 already used still count')
  t.equal((await call(gw, 'k1')).status, 429)
})

t.test('a key\'s own quota (PUT /admin/keys/quota) replaces its tier\'s for the current period, and is taken back with DELETE', async t => {
  const upstream = await startUpstream(t)
  const clock = new ManualClock(Date.UTC(2026, 10, 15))
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, RATE_LIMIT_TIERS: 'free=100/s:100+3/mo,pro=100/s:100', API_KEYS: 'k1:free,k2:free,k3:pro', ADMIN_TOKEN: TOKEN }, { clock })
  for (let i = 0; i < 3; i++) t.equal((await call(gw, 'k1')).status, 200)
  t.equal((await call(gw, 'k1')).status, 429)
  t.match(JSON.parse((await admin(gw, 'GET', '/admin/keys/quota?apiKey=k1')).body), { client: /^key:/, tier: 'free', quota: '3/mo', source: 'tier' })
  const put = await admin(gw, 'PUT', '/admin/keys/quota?apiKey=k1', { quota: '10/mo' })
  t.equal(put.status, 200, put.body)
  t.match(JSON.parse((await admin(gw, 'GET', '/admin/keys/quota?apiKey=k1')).body), { quota: '10/mo', source: 'key' })
  for (let i = 0; i < 7; i++) t.equal((await call(gw, 'k1')).status, 200, `k1 with its own 10/mo: ${4 + i} of 10`)
  t.equal((await call(gw, 'k1')).status, 429)
  t.equal((await call(gw, 'k2')).status, 200, 'the other free key keeps the tier\'s quota')
  t.equal((await admin(gw, 'PUT', '/admin/keys/quota?apiKey=k3', { quota: '1/mo' })).status, 200, 'a tier without a quota: the key gets one')
  t.equal((await call(gw, 'k3')).status, 200)
  t.equal((await call(gw, 'k3')).status, 429, 'pro-quota: 1/mo')
  t.equal((await admin(gw, 'DELETE', '/admin/keys/quota?apiKey=k1')).status, 204)
  t.equal((await call(gw, 'k1')).status, 429, 'back to the tier\'s 3/mo: 10 used')
  t.equal((await admin(gw, 'PUT', '/admin/keys/quota?apiKey=nope', { quota: '1/mo' })).status, 404, 'only registered keys')
  t.equal((await admin(gw, 'PUT', '/admin/keys/quota?apiKey=k1', { quota: '1.5/mo' })).status, 400, 'a quota counts whole requests')
})

t.test('quota configuration errors name the variable', async t => {
  const base = { UPSTREAM_URL: 'http://127.0.0.1:1' }
  t.throws(() => loadConfig({ ...base, QUOTA_TIMEZONE: 'Mars/Olympus' }), /QUOTA_TIMEZONE: "Mars\/Olympus" is not an IANA time zone/)
  t.throws(() => loadConfig({ ...base, RATE_LIMIT_QUOTA: '2.5/mo' }), /RATE_LIMIT_QUOTA: a quota counts whole requests/)
  t.throws(() => loadConfig({ ...base, RATE_LIMIT_TIERS: 'free=10/s:20+lots' }), /RATE_LIMIT_TIERS: tier "free": quota: expected a positive number/)
  t.throws(() => loadConfig({ ...base, RATE_LIMIT_RATE: '1000/mo' }), /RATE_LIMIT_RATE: "1000\/mo" counts calendar months, which only the fixed-window algorithm does/)
  const ok = loadConfig({ ...base, RATE_LIMIT_QUOTA: '10000/mo', QUOTA_TIMEZONE: 'Europe/Berlin', RATE_LIMIT_TIERS: 'free=10/s:20+1000/w,pro=100/s:200' })
  t.same([ok.limit.quota?.text, ok.timeZone, ok.tiers.get('free')!.quota?.text, ok.tiers.get('pro')!.quota], ['10000/mo', 'Europe/Berlin', '1000/w', undefined])
  t.equal(loadConfig({ ...base, RATE_LIMIT_ALGORITHM: 'fixed-window', RATE_LIMIT_RATE: '1000/mo' }).limit.rate.calendar, 'month', 'a fixed window may count months as its rate')
})
