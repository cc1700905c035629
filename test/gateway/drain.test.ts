/**
 * Draining at close: requests in flight finish, and no connection holds the drain open,
 * neither an idle keep-alive one nor one that never sent a request (a client's spare
 * connection, a load balancer's pre-opened one), which would otherwise wait for
 * CLIENT_IDLE_TIMEOUT_MS (60 s by default).
 */
import t from 'tap'
import { connect } from 'node:net'
import { once } from 'node:events'
import { startGateway } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'
import { startUpstream } from '../helpers/upstream.js'

t.test('close(): a connection that never sent a request is closed at once, a request in flight finishes', async t => {
  const upstream = await startUpstream(t)
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url })
  t.equal((await send(`${gw.url}/ping`)).status, 200, 'a keep-alive connection, idle now')
  const spare = connect(gw.port, '127.0.0.1')
  await once(spare, 'connect')
  const spareClosed = once(spare, 'close')
  spare.resume()
  const inFlight = send(`${gw.url}/slow?ms=400`)
  await new Promise(resolve => setTimeout(resolve, 100))
  const started = Date.now()
  await gw.app.close()
  const ms = Date.now() - started
  await spareClosed
  t.equal((await inFlight).status, 200, 'the request in flight finished')
  t.ok(ms < 10_000, `the drain took ${ms} ms (the idle timeout is 60,000)`)
  t.equal(spare.bytesRead, 0, 'the spare connection was closed without an answer')
})
