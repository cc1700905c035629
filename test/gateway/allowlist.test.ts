import t from 'tap'
import type { MemoryStore } from '../../src/store/memory.js'
import { startUpstream } from '../helpers/upstream.js'
import { startGateway } from '../helpers/gateway.js'
import { send, statuses } from '../helpers/http.js'

t.test('allowlisted networks and keys are never limited and never counted', async t => {
  const upstream = await startUpstream(t)
  const gw = await startGateway(t, {
    UPSTREAM_URL: upstream.url, RATE_LIMIT_RATE: '1/h', RATE_LIMIT_BURST: '1',
    ALLOWLIST: '127.0.0.3, 198.51.100.0/24, 2001:db8:aa::/48, key:internal-service', TRUST_PROXY: '127.0.0.4'
  })
  const store = gw.app.store as MemoryStore
  const all200 = (xs: number[]) => xs.every(s => s === 200)

  t.ok(all200(await statuses(`${gw.url}/ping`, 10, { from: '127.0.0.3' })), 'an allowlisted address')
  t.ok(all200(await statuses(`${gw.url}/ping`, 10, { from: '127.0.0.2', headers: { 'x-api-key': 'internal-service' } })), 'an allowlisted key, from anywhere')
  t.ok(all200(await statuses(`${gw.url}/ping`, 10, { from: '127.0.0.4', headers: { 'x-forwarded-for': '198.51.100.77' } })), 'a CIDR, through a trusted proxy')
  t.ok(all200(await statuses(`${gw.url}/ping`, 10, { from: '127.0.0.4', headers: { 'x-forwarded-for': '2001:db8:aa:1::5' } })), 'an IPv6 CIDR')
  t.ok(all200(await statuses(`${gw.url}/ping`, 10, { from: '127.0.0.4', headers: { 'x-forwarded-for': '::ffff:198.51.100.8' } })), 'a mapped IPv4 in an IPv4 CIDR')
  t.equal(store.size(), 0, 'none of them was counted')
  const allowed = await send(`${gw.url}/ping`, { from: '127.0.0.3' })
  t.equal(allowed.headers['x-ratelimit-limit'], undefined, 'no limit headers: no limit applies')

  t.same(await statuses(`${gw.url}/ping`, 2, { from: '127.0.0.2' }), [200, 429], 'anyone else is limited')
  t.same(await statuses(`${gw.url}/ping`, 2, { from: '127.0.0.5', headers: { 'x-forwarded-for': '198.51.100.9' } }), [200, 429], 'X-Forwarded-For from an untrusted peer does not allowlist')
  t.same(await statuses(`${gw.url}/ping`, 2, { from: '127.0.0.6', headers: { 'x-api-key': 'internal-service-not' } }), [200, 429], 'only the exact key')
})
