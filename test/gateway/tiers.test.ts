import t from 'tap'
import { startUpstream } from '../helpers/upstream.js'
import { startGateway } from '../helpers/gateway.js'
import { send, statuses } from '../helpers/http.js'

t.test('an API key\'s tier picks its limit; keys without a tier and anonymous clients get the default', async t => {
  const upstream = await startUpstream(t)
  const gw = await startGateway(t, {
    UPSTREAM_URL: upstream.url, RATE_LIMIT_RATE: '1/h', RATE_LIMIT_BURST: '2',
    RATE_LIMIT_TIERS: 'free=1/h:1,pro=1/h:4', API_KEYS: 'k-free:free,k-pro:pro,k-plain'
  })
  const as = (key?: string) => ({ headers: key ? { 'x-api-key': key } : {} })
  t.same(await statuses(`${gw.url}/ping`, 2, as('k-free')), [200, 429], 'free: 1')
  t.same(await statuses(`${gw.url}/ping`, 5, as('k-pro')), [200, 200, 200, 200, 429], 'pro: 4')
  t.same(await statuses(`${gw.url}/ping`, 3, as('k-plain')), [200, 200, 429], 'a key without a tier: the default 2')
  t.same(await statuses(`${gw.url}/ping`, 3, { from: '127.0.0.2' }), [200, 200, 429], 'no key: the default 2, by IP')
  const pro = await send(`${gw.url}/ping`, as('k-pro'))
  t.equal(pro.headers['ratelimit-policy'], '"pro";q=4;w=14400', 'the headers name the tier')
  t.equal(pro.headers['x-ratelimit-limit'], '4')
})

t.test('tiers are checked together with the global limit', async t => {
  const upstream = await startUpstream(t)
  const gw = await startGateway(t, {
    UPSTREAM_URL: upstream.url, RATE_LIMIT_TIERS: 'pro=1/h:10', API_KEYS: 'k-pro:pro',
    GLOBAL_RATE_LIMIT_RATE: '1/h', GLOBAL_RATE_LIMIT_BURST: '3'
  })
  const r = await send(`${gw.url}/ping`, { headers: { 'x-api-key': 'k-pro' } })
  t.equal(r.headers['ratelimit-policy'], '"global";q=3;w=10800, "pro";q=10;w=36000')
  t.same(await statuses(`${gw.url}/ping`, 3, { headers: { 'x-api-key': 'k-pro' } }), [200, 200, 429], 'the global burst of 3 binds first')
})

t.test('refused by several limits at once: the longest wait speaks', async t => {
  const upstream = await startUpstream(t)
  const gw = await startGateway(t, {
    UPSTREAM_URL: upstream.url, RATE_LIMIT_RATE: '1/m', RATE_LIMIT_BURST: '1', GLOBAL_RATE_LIMIT_RATE: '1/h', GLOBAL_RATE_LIMIT_BURST: '1'
  })
  t.equal((await send(`${gw.url}/ping`)).status, 200)
  const r = await send(`${gw.url}/ping`)
  t.equal(r.status, 429)
  t.equal(r.headers['retry-after'], '3600', 'the global limit\'s hour, not the default\'s minute')
  t.match(JSON.parse(r.body), { policy: 'global' })
})
