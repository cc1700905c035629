import t from 'tap'
import { startUpstream } from '../helpers/upstream.js'
import { startGateway } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'

t.test('the global limit is shared by all clients and checked with the per-client one', async t => {
  const upstream = await startUpstream(t)
  const gw = await startGateway(t, {
    UPSTREAM_URL: upstream.url, RATE_LIMIT_RATE: '1/m', RATE_LIMIT_BURST: '2',
    GLOBAL_RATE_LIMIT_RATE: '1/m', GLOBAL_RATE_LIMIT_BURST: '3'
  })
  const a1 = await send(`${gw.url}/ping`, { from: '127.0.0.2' })
  t.equal(a1.status, 200)
  t.equal(a1.headers['ratelimit-policy'], '"global";q=3;w=180, "default";q=2;w=120', 'every policy is listed')
  t.equal(a1.headers.ratelimit, '"global";r=2;t=60, "default";r=1;t=60')
  t.equal(a1.headers['x-ratelimit-remaining'], '1', 'legacy headers speak for the most restrictive')
  t.equal((await send(`${gw.url}/ping`, { from: '127.0.0.3' })).status, 200)
  t.equal((await send(`${gw.url}/ping`, { from: '127.0.0.4' })).status, 200)
  const limited = await send(`${gw.url}/ping`, { from: '127.0.0.5' })
  t.equal(limited.status, 429, 'a fresh client is refused once the global bucket is empty')
  t.match(JSON.parse(limited.body), { policy: 'global' })
  t.equal(limited.headers['x-ratelimit-limit'], '3')
  t.equal(upstream.hits.get('/ping'), 3)
})
