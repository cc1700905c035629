import t from 'tap'
import { startUpstream } from '../helpers/upstream.js'
import { startGateway } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'

t.test('health and readiness are served on the admin listener only', async t => {
  const upstream = await startUpstream(t)
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url })
  const health = await send(`${gw.adminUrl}/healthz`)
  t.equal(health.status, 200)
  t.same(JSON.parse(health.body), { status: 'ok' })
  const ready = await send(`${gw.adminUrl}/readyz`)
  t.equal(ready.status, 200)
  t.same(JSON.parse(ready.body), { status: 'ready', rateLimiting: true, store: { kind: 'memory', mode: 'memory', ready: true }, upstream: { reachable: true, error: null, checkedAt: JSON.parse(ready.body).upstream.checkedAt } })

  // On the client port the same paths belong to the upstream.
  const proxied = await send(`${gw.url}/healthz`)
  t.equal(proxied.status, 404)
  t.same(JSON.parse(proxied.body), { message: 'not found' })
  t.equal(upstream.hits.get('/healthz'), 1, 'the client-port request went to the upstream')
})

t.test('readiness fails while draining', async t => {
  const upstream = await startUpstream(t)
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url })
  gw.app.state.draining = true
  const ready = await send(`${gw.adminUrl}/readyz`)
  t.equal(ready.status, 503)
  t.match(JSON.parse(ready.body), { status: 'draining' })
})
