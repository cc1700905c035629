import t from 'tap'
import { startUpstream } from '../helpers/upstream.js'
import { startGateway } from '../helpers/gateway.js'
import { send, statuses } from '../helpers/http.js'

t.test('RATE_LIMIT_ENABLED=false proxies everything, with no limit headers', async t => {
  const upstream = await startUpstream(t)
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, RATE_LIMIT_ENABLED: 'false', RATE_LIMIT_BURST: '1' })
  t.same(new Set(await statuses(`${gw.url}/ping`, 30)), new Set([200]))
  const r = await send(`${gw.url}/ping`)
  t.equal(r.headers['x-ratelimit-limit'], undefined)
  t.equal(r.headers.ratelimit, undefined)
  t.equal(upstream.hits.get('/ping'), 31)
  t.equal(gw.app.store, undefined, 'no store is even created')
})
