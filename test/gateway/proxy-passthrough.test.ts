import t from 'tap'
import { createServer, request, type IncomingMessage } from 'node:http'
import { once } from 'node:events'
import { connect, type AddressInfo } from 'node:net'
import { startUpstream } from '../helpers/upstream.js'
import { startGateway } from '../helpers/gateway.js'
import { rawExchange, send } from '../helpers/http.js'
import type { Teardown } from '../helpers/tap.js'

async function setup (t: Teardown, env: Record<string, string> = {}) {
  const upstream = await startUpstream(t)
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, RATE_LIMIT_BURST: '1000', ...env })
  return { upstream, gw }
}

t.test('method, path, query string, headers and body arrive intact', async t => {
  const { gw, upstream } = await setup(t)
  for (const method of ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']) {
    const body = method === 'GET' || method === 'OPTIONS' ? undefined : `payload-${method}`
    const r = await send(`${gw.url}/echo/a%20b/c?x=1&y=%C3%A9&x=2&empty=`, {
      method: method as never,
      headers: { 'x-custom': 'value', 'content-type': 'text/plain', accept: 'application/json' },
      ...(body ? { body } : {})
    })
    t.equal(r.status, 200, method)
    const echo = JSON.parse(r.body)
    t.equal(echo.method, method)
    t.equal(echo.url, '/echo/a%20b/c?x=1&y=%C3%A9&x=2&empty=', `${method}: raw path and query preserved`)
    t.match(echo.headers, { 'x-custom': 'value', accept: 'application/json', host: `127.0.0.1:${upstream.port}` })
    t.equal(echo.bodyBytes, body ? body.length : 0)
  }
  const head = await send(`${gw.url}/ping`, { method: 'HEAD' })
  t.equal(head.status, 200)
  t.equal(head.body, '')
})

t.test('upstream status and response headers come back unchanged', async t => {
  const { gw } = await setup(t)
  for (const status of [201, 204, 301, 404, 418, 500, 503]) {
    const r = await send(`${gw.url}/status/${status}`)
    t.equal(r.status, status)
    // A 204 has no content, so no content type (fastify drops it, as it should).
    t.equal(r.headers['content-type'], status === 204 ? undefined : 'text/plain', `${status}: content-type`)
  }
})

t.test('X-Forwarded-For/-Proto/-Host are set; a spoofed chain from an untrusted peer is replaced', async t => {
  const { gw } = await setup(t)
  const r = await send(`${gw.url}/echo`, { headers: { 'x-forwarded-for': '6.6.6.6', 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https' } })
  t.match(JSON.parse(r.body).headers, { 'x-forwarded-for': '127.0.0.1', 'x-forwarded-proto': 'http', 'x-forwarded-host': `127.0.0.1:${gw.port}` })
})

t.test('a trusted proxy\'s chain is extended and its proto and host kept', async t => {
  const { gw } = await setup(t, { TRUST_PROXY: '127.0.0.1' })
  const r = await send(`${gw.url}/echo`, { headers: { 'x-forwarded-for': '203.0.113.1', 'x-forwarded-host': 'shop.example', 'x-forwarded-proto': 'https' } })
  t.match(JSON.parse(r.body).headers, { 'x-forwarded-for': '203.0.113.1, 127.0.0.1', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'shop.example' })
})

t.test('hop-by-hop request headers are not forwarded', async t => {
  const { gw } = await setup(t)
  // undici refuses to send Keep-Alive itself, so this request goes out over node:http.
  const req = request(`${gw.url}/echo`, {
    headers: { connection: 'keep-alive, x-drop-me', 'x-drop-me': '1', 'keep-alive': 'timeout=5', 'proxy-authorization': 'Basic eA==', te: 'trailers', 'x-keep': '1' }
  })
  req.end()
  const [res] = await once(req, 'response') as [IncomingMessage]
  let body = ''
  for await (const chunk of res) body += chunk
  t.equal(res.statusCode, 200)
  const h = JSON.parse(body).headers
  t.equal(h['x-drop-me'], undefined, 'headers named in Connection are dropped')
  t.equal(h['keep-alive'], undefined)
  t.equal(h['proxy-authorization'], undefined)
  t.equal(h.te, 'trailers', 'TE: trailers is the one TE a proxy passes on')
  t.equal(h['x-keep'], '1')
})

t.test('hop-by-hop response headers are not passed back', async t => {
  const upstream = createServer((_req, res) => {
    res.writeHead(200, { connection: 'keep-alive, x-internal', 'x-internal': 'secret', 'keep-alive': 'timeout=99', 'x-public': 'yes', 'content-type': 'text/plain' })
    res.end('ok')
  }).listen(0, '127.0.0.1')
  await once(upstream, 'listening')
  t.teardown(() => new Promise(resolve => { upstream.closeAllConnections(); upstream.close(resolve) }))
  const gw = await startGateway(t, { UPSTREAM_URL: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}` })
  const r = await send(`${gw.url}/`)
  t.equal(r.body, 'ok')
  t.equal(r.headers['x-public'], 'yes')
  t.equal(r.headers['x-internal'], undefined)
  t.not(r.headers['keep-alive'], 'timeout=99', 'the upstream hop\'s keep-alive is not the client\'s')
})

t.test('an HTTP/1.0 request without Host is proxied without X-Forwarded-Host', async t => {
  const { gw } = await setup(t)
  const socket = connect(gw.port, '127.0.0.1')
  socket.write('GET /echo HTTP/1.0\r\n\r\n')
  let raw = ''
  for await (const chunk of socket) raw += chunk
  t.match(raw, /^HTTP\/1\.1 200/)
  const headers = JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4)).headers
  t.equal(headers['x-forwarded-host'], undefined)
  t.equal(headers['x-forwarded-for'], '127.0.0.1')
})

t.test('an upstream with a base path gets it prefixed', async t => {
  const upstream = await startUpstream(t)
  const gw = await startGateway(t, { UPSTREAM_URL: `${upstream.url}/echo` })
  const r = await send(`${gw.url}/deeper?q=1`)
  t.equal(JSON.parse(r.body).url, '/echo/deeper?q=1')
})

t.test('refused before anything else: two Host headers, none (HTTP/1.1), and paths climbing out of their root', async t => {
  const upstream = await startUpstream(t)
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url })
  const exchange = async (bytes: string): Promise<string> => (await rawExchange(gw.port, bytes)).raw
  for (const [name, bytes] of [
    ['two Host headers', 'GET /echo HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n'],
    // Regression (issue 25.9): Node's own answer was a bare 400 with an empty chunked body.
    ['no Host header', 'GET /echo HTTP/1.1\r\n\r\n'],
    ['a twice-encoded ".."', 'GET /echo/%252e%252e/x HTTP/1.1\r\nHost: a\r\n\r\n']
  ] as const) {
    const raw = await exchange(bytes)
    t.match(raw, /^HTTP\/1\.1 400 /, `${name}: 400`)
    t.match(raw, /"code":"GW_BAD_REQUEST"/)
    t.match(raw, /content-type: application\/problem\+json/i, `${name}: problem+json`)
    t.match(raw, /connection: close/i, 'and the connection is closed')
  }
  t.match(await exchange('GET /echo HTTP/1.0\r\n\r\n'), /^HTTP\/1\.1 200 /, 'HTTP/1.0 needs no Host')
  t.equal(upstream.hits.get('/echo') ?? 0, 1, 'none of the refused reached the upstream')
  t.equal(upstream.total(), 1)
})

t.test('a path starting with // reaches the upstream unchanged', async t => {
  const upstream = createServer((req, res) => res.end(req.url)).listen(0, '127.0.0.1')
  await once(upstream, 'listening')
  t.teardown(() => { upstream.closeAllConnections(); upstream.close() })
  const gw = await startGateway(t, { UPSTREAM_URL: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}` })
  const text = (await rawExchange(gw.port, 'GET //echo//x?y=1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n')).raw
  t.match(text, /^HTTP\/1\.1 200 /)
  t.equal(text.slice(text.indexOf('\r\n\r\n') + 4), '//echo//x?y=1')
})
