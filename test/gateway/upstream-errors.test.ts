import t from 'tap'
import { createServer } from 'node:net'
import { once } from 'node:events'
import { startUpstream } from '../helpers/upstream.js'
import { startGateway } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'
import { freePort } from '../helpers/process.js'


t.test('connection refused → 502 quickly, with a body that does not reveal the upstream', async t => {
  const port = await freePort() // nothing listens there now
  const gw = await startGateway(t, { UPSTREAM_URL: `http://127.0.0.1:${port}` })
  const started = Date.now()
  const r = await send(`${gw.url}/ping`)
  const took = Date.now() - started
  t.equal(r.status, 502)
  t.match(r.headers['content-type'], /^application\/problem\+json/)
  t.match(JSON.parse(r.body), { status: 502, code: 'GW_UPSTREAM_UNAVAILABLE', title: 'Bad Gateway' })
  t.notMatch(r.body, String(port), 'no upstream port in the body')
  t.notMatch(r.body, /127\.0\.0\.1|ECONNREFUSED/, 'no upstream address or error in the body')
  t.ok(took < 1000, `answered in ${took} ms`)
  t.equal((await send(`${gw.adminUrl}/healthz`)).status, 200, 'the gateway stays up')
})

t.test('no answer within UPSTREAM_TIMEOUT_MS → 504 at about that time', async t => {
  const upstream = await startUpstream(t)
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, UPSTREAM_TIMEOUT_MS: '300' })
  const started = Date.now()
  const r = await send(`${gw.url}/slow?ms=5000`)
  const took = Date.now() - started
  t.equal(r.status, 504)
  t.match(JSON.parse(r.body), { status: 504, code: 'GW_UPSTREAM_TIMEOUT', title: 'Gateway Timeout' })
  t.notMatch(r.body, String(upstream.port))
  t.ok(took >= 290 && took < 2000, `answered in ${took} ms`)
  t.equal(upstream.hits.get('/slow'), 1, 'not retried')
  t.equal((await send(`${gw.url}/ping`)).status, 200, 'and the next request is fine')
})

t.test('a 503 from the upstream is passed back once, never retried', async t => {
  const upstream = await startUpstream(t)
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url })
  for (const method of ['GET', 'POST']) {
    const r = await send(`${gw.url}/status/503`, { method: method as never })
    t.equal(r.status, 503, method)
  }
  t.equal(upstream.hits.get('/status/503'), 2, 'one upstream request per client request')
})

t.test('an upstream answering an invalid status → 502', async t => {
  // A raw TCP peer: node:http would refuse to send such a status at all.
  const upstream = createServer(socket => {
    socket.once('data', () => socket.end('HTTP/1.1 999 Nope\r\ncontent-length: 2\r\n\r\nhi'))
  }).listen(0, '127.0.0.1')
  await once(upstream, 'listening')
  t.teardown(() => new Promise(resolve => upstream.close(resolve)))
  const gw = await startGateway(t, { UPSTREAM_URL: `http://127.0.0.1:${(upstream.address() as { port: number }).port}` })
  const r = await send(`${gw.url}/ping`)
  t.equal(r.status, 502)
  t.match(JSON.parse(r.body), { code: 'GW_UPSTREAM_UNAVAILABLE' })
  t.equal((await send(`${gw.adminUrl}/healthz`)).status, 200)
})

t.test('a dropped upstream connection → 502, not retried', async t => {
  const { createServer: createHttp } = await import('node:http')
  let hits = 0
  const upstream = createHttp((req) => { hits++; req.socket.destroy() }).listen(0, '127.0.0.1')
  await once(upstream, 'listening')
  t.teardown(() => new Promise(resolve => upstream.close(resolve)))
  const gw = await startGateway(t, { UPSTREAM_URL: `http://127.0.0.1:${(upstream.address() as { port: number }).port}` })
  const r = await send(`${gw.url}/ping`)
  t.equal(r.status, 502)
  t.equal(hits, 1)
})
