import t from 'tap'
import { startUpstream } from '../helpers/upstream.js'
import { startGateway } from '../helpers/gateway.js'
import { statuses } from '../helpers/http.js'

t.test('RATE_LIMIT_KEY_BY=global: every client shares one limit', async t => {
  const upstream = await startUpstream(t)
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, RATE_LIMIT_KEY_BY: 'global', RATE_LIMIT_RATE: '1/h', RATE_LIMIT_BURST: '3' })
  const seen = [
    ...await statuses(`${gw.url}/ping`, 2, { from: '127.0.0.2' }),
    ...await statuses(`${gw.url}/ping`, 2, { from: '127.0.0.3' })
  ]
  t.same(seen, [200, 200, 200, 429], 'three requests from two addresses use up the one burst')
})

t.test('api-key,global: known keys have their own limit, everyone else shares one', async t => {
  const upstream = await startUpstream(t)
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, RATE_LIMIT_KEY_BY: 'api-key,global', API_KEYS: 'k1', RATE_LIMIT_RATE: '1/h', RATE_LIMIT_BURST: '2' })
  t.same(await statuses(`${gw.url}/ping`, 3, { from: '127.0.0.2' }), [200, 200, 429])
  t.same(await statuses(`${gw.url}/ping`, 1, { from: '127.0.0.3' }), [429], 'anonymous from elsewhere: the same shared limit')
  t.same(await statuses(`${gw.url}/ping`, 3, { from: '127.0.0.3', headers: { 'x-api-key': 'k1' } }), [200, 200, 429], 'a known key: its own')
})
