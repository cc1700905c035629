import t from 'tap'
import { once } from 'node:events'
import { createServer, type Socket } from 'node:net'
import { check, localAddress } from '../../src/healthcheck.js'
import { startUpstream } from '../helpers/upstream.js'
import { startGateway } from '../helpers/gateway.js'
import { freePort } from '../helpers/process.js'

t.test('the container health check asks the admin listener the gateway really uses', async t => {
  const upstream = await startUpstream(t)
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url })
  const adminPort = new URL(gw.adminUrl).port
  t.equal(await check({ UPSTREAM_URL: upstream.url, ADMIN_PORT: adminPort }), true, 'healthy gateway: exit 0')
  t.equal(await check({ UPSTREAM_URL: upstream.url, ADMIN_PORT: String(await freePort()) }), false, 'nothing listening: exit 1')
})

t.test('an admin listener that accepts but never answers fails the check at the timeout', async t => {
  const held = new Set<Socket>()
  const silent = createServer(s => { held.add(s) }).listen(0, '127.0.0.1')
  await once(silent, 'listening')
  t.teardown(() => { for (const s of held) s.destroy(); silent.close() })
  const started = Date.now()
  t.equal(await check({ UPSTREAM_URL: 'http://127.0.0.1:1', ADMIN_PORT: String((silent.address() as { port: number }).port) }, 200), false)
  t.ok(Date.now() - started < 2000, 'gave up at its timeout')
})

t.test('listen-all addresses are checked on loopback', async t => {
  t.equal(localAddress('0.0.0.0'), '127.0.0.1')
  t.equal(localAddress('::'), '127.0.0.1')
  t.equal(localAddress(''), '127.0.0.1')
  t.equal(localAddress('10.0.0.5'), '10.0.0.5')
})
