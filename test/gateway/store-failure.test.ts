import t from 'tap'
import type { Decision } from '../../src/core/decision.js'
import type { Policy } from '../../src/core/policy.js'
import type { Store } from '../../src/store/types.js'
import { startUpstream } from '../helpers/upstream.js'
import { startGateway } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'
import { connect } from 'node:net'
import { once } from 'node:events'
import { eventually } from '../helpers/load.js'

/**
 * Stores that fail the ways a remote store can: throwing, rejecting, or answering later.
 * (The Redis store's real failures are tested against real redis-server processes.)
 */
function store (consume: Store['consume']): Store {
  const nothing = () => { throw new Error('not used') }
  return { kind: 'test', consume, release: nothing, settle: nothing, usage: nothing, topUsage: nothing, inspect: nothing, reset: nothing, ban: nothing, unban: nothing, size: () => 0, ready: () => true, mode: () => 'test', close: async () => {} }
}
const allow = (policies: readonly Policy[]): Decision[] =>
  policies.map(policy => ({ policy, allowed: true, remaining: 7, resetMs: 1500, retryAfterMs: 0, delayMs: 0 }))

t.test('a store that throws is a 503, never a 429, and never reaches the upstream', async t => {
  const upstream = await startUpstream(t)
  for (const [name, failing] of [
    ['throws', store(() => { throw new Error('boom') })],
    ['rejects', store(async () => { throw new Error('boom') })]
  ] as const) {
    const gw = await startGateway(t, { UPSTREAM_URL: upstream.url }, { store: failing })
    const r = await send(`${gw.url}/ping`)
    t.equal(r.status, 503, name)
    t.match(JSON.parse(r.body), { status: 503, code: 'GW_STORE_UNAVAILABLE' })
    t.equal(r.headers['retry-after'], undefined, `${name}: no rate-limit answer for a store failure`)
  }
  t.equal(upstream.total(), 0)
})

t.test('an asynchronous store decides before the request is proxied', async t => {
  const upstream = await startUpstream(t)
  const slow = store(async (_subject, policies) => {
    await new Promise(resolve => setTimeout(resolve, 20))
    return allow(policies)
  })
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url }, { store: slow })
  const r = await send(`${gw.url}/ping`)
  t.equal(r.status, 200)
  t.equal(r.headers['x-ratelimit-remaining'], '7')
  t.equal(r.headers['x-ratelimit-reset'], '2')
})

t.test('readiness follows the store', async t => {
  const upstream = await startUpstream(t)
  const down = { ...store(() => []), ready: () => false }
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url }, { store: down })
  const r = await send(`${gw.adminUrl}/readyz`)
  t.equal(r.status, 503)
  t.match(JSON.parse(r.body), { status: 'not-ready', rateLimiting: true, store: { kind: 'test', mode: 'test', ready: false }, upstream: { reachable: true } })

  const off = await startGateway(t, { UPSTREAM_URL: upstream.url, RATE_LIMIT_ENABLED: 'false' })
  const r2 = await send(`${off.adminUrl}/readyz`)
  t.equal(r2.status, 200)
  t.match(JSON.parse(r2.body), { status: 'ready', rateLimiting: false, store: null, upstream: { reachable: true } })
})

t.test('a client that leaves while the store decides is never forwarded', async t => {
  const upstream = await startUpstream(t)
  let decided = 0
  const slow = store(async (_subject, policies) => {
    await new Promise(resolve => setTimeout(resolve, 150))
    decided++
    return allow(policies)
  })
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url }, { store: slow })
  const socket = connect(gw.port, '127.0.0.1')
  await once(socket, 'connect')
  socket.write('GET /ping HTTP/1.1\r\nHost: x\r\n\r\n')
  await new Promise(resolve => setTimeout(resolve, 30))
  socket.destroy()
  t.ok(await eventually(() => decided === 1, 2000), 'the store answered after the client left')
  await new Promise(resolve => setTimeout(resolve, 100))
  t.equal(upstream.total(), 0, 'and nothing went upstream')
  t.equal((await send(`${gw.url}/ping`)).status, 200, 'the next client is served')
})
