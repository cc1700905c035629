import t from 'tap'
import { startUpstream } from '../helpers/upstream.js'
import { startGateway } from '../helpers/gateway.js'
import { send, statuses } from '../helpers/http.js'
import { startRedis } from '../helpers/redis.js'

const BANS = { RATE_LIMIT_RATE: '1/h', RATE_LIMIT_BURST: '2', RATE_LIMIT_BAN_AFTER: '3', RATE_LIMIT_BAN_WINDOW: '1m', RATE_LIMIT_BAN_DURATION: '10m' }

t.test('after RATE_LIMIT_BAN_AFTER refusals a client gets 403 for RATE_LIMIT_BAN_DURATION; others are unaffected', async t => {
  const upstream = await startUpstream(t)
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, ...BANS })
  t.same(await statuses(`${gw.url}/ping`, 7, { from: '127.0.0.2' }), [200, 200, 429, 429, 429, 403, 403], 'the third refusal bans')
  const r = await send(`${gw.url}/ping`, { from: '127.0.0.2' })
  t.equal(r.status, 403)
  t.match(r.headers['content-type'], /^application\/problem\+json/)
  t.match(JSON.parse(r.body), { status: 403, code: 'GW_BANNED', retryAfter: 600 })
  t.equal(r.headers['retry-after'], '600', 'Retry-After: the ban\'s remaining time')
  t.equal(upstream.hits.get('/ping'), 2, 'only the admitted requests reached the upstream')
  t.same(await statuses(`${gw.url}/ping`, 3, { from: '127.0.0.3' }), [200, 200, 429], 'another client is limited, not banned')
})

t.test('no bans in dry run: nothing is refused, so nothing counts towards a ban', async t => {
  const upstream = await startUpstream(t)
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, ...BANS, RATE_LIMIT_DRY_RUN: 'true' })
  t.same(await statuses(`${gw.url}/ping`, 8), Array(8).fill(200))
})

t.test('a ban is shared through Redis: earned on one instance, enforced by another', async t => {
  const redis = await startRedis(t)
  const upstream = await startUpstream(t)
  const env = { UPSTREAM_URL: upstream.url, STORE: 'redis', REDIS_URL: redis.url, REDIS_TIMEOUT_MS: '1000', ...BANS }
  const a = await startGateway(t, env)
  const b = await startGateway(t, env)
  t.same(await statuses(`${a.url}/ping`, 5, { from: '127.0.0.2' }), [200, 200, 429, 429, 429], 'three refusals on instance A')
  const onB = await send(`${b.url}/ping`, { from: '127.0.0.2' })
  t.equal(onB.status, 403, 'instance B refuses the client at its first request')
  t.match(JSON.parse(onB.body), { code: 'GW_BANNED' })
  t.ok(Number(onB.headers['retry-after']) > 590 && Number(onB.headers['retry-after']) <= 600, `for the rest of the ban (${onB.headers['retry-after']} s)`)
  t.equal((await send(`${a.url}/ping`, { from: '127.0.0.2' })).status, 403, 'and so does A')
  const keys = (await redis.admin.keys('rl:*')).sort()
  t.ok(keys.includes('rl:{ip:127.0.0.2}:ban'), `the ban is a Redis key in the client's slot (${keys.join(', ')})`)
  t.ok(await redis.admin.pttl('rl:{ip:127.0.0.2}:ban') > 590_000, 'expiring with the ban')
  t.equal((await send(`${b.url}/ping`, { from: '127.0.0.3' })).status, 200, 'other clients pass')
})
