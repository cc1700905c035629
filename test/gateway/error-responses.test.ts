import t from 'tap'
import pino from 'pino'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config/index.js'
import { problem, statusTitle } from '../../src/errors.js'
import { connect } from 'node:net'
import { once } from 'node:events'
import { startUpstream } from '../helpers/upstream.js'
import { startGateway } from '../helpers/gateway.js'
import { rawExchange, send } from '../helpers/http.js'

t.test('unexpected errors are answered as problem+json without internals; 4xx errors keep their message', async t => {
  const app = await buildApp(loadConfig({ UPSTREAM_URL: 'http://127.0.0.1:9', LOG_LEVEL: 'silent' }), { logger: pino({ level: 'silent' }) })
  t.teardown(() => app.close())
  // Routes that fail the way a bug or a library would, registered beside the proxy.
  app.gateway.get('/__test/boom', async () => { throw new Error('secret internal detail at 10.0.0.5') })
  app.gateway.get('/__test/bad', async () => { throw Object.assign(new Error('bad input here'), { statusCode: 400, code: 'X_BAD' }) })

  const boom = await app.gateway.inject({ url: '/__test/boom' })
  t.equal(boom.statusCode, 500)
  t.match(boom.headers['content-type'], /^application\/problem\+json/)
  t.same(JSON.parse(boom.body), { type: 'about:blank', title: 'Internal Server Error', status: 500, detail: 'Internal error', code: 'GW_INTERNAL' })

  const bad = await app.gateway.inject({ url: '/__test/bad' })
  t.equal(bad.statusCode, 400)
  t.same(JSON.parse(bad.body), { type: 'about:blank', title: 'Bad Request', status: 400, detail: 'bad input here', code: 'X_BAD' })
})

t.test('problem details titles', async t => {
  t.equal(statusTitle(429), 'Too Many Requests')
  t.equal(statusTitle(499), 'Bad Request', 'unknown 4xx')
  t.equal(statusTitle(599), 'Internal Server Error', 'unknown 5xx')
  t.same(problem(503), { type: 'about:blank', title: 'Service Unavailable', status: 503 })
})

/** Sends raw bytes and reads until the gateway closes the connection. */
const raw = async (port: number, bytes: string, thenWait = false): Promise<string> => (await rawExchange(port, bytes, { end: !thenWait })).raw

function bodyOf (response: string): Record<string, unknown> {
  return JSON.parse(response.slice(response.indexOf('\r\n\r\n') + 4)) as Record<string, unknown>
}

t.test('requests the parser refuses or the timeouts cut get problem+json with a code, like every other error', async t => {
  const upstream = await startUpstream(t)
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, REQUEST_HEADERS_TIMEOUT_MS: '1000' })
  const slow = await raw(gw.port, 'GET /ping HTTP/1.1\r\nHost: x\r\nX-Slow: 1', true)
  t.match(slow, /^HTTP\/1\.1 408 Request Timeout\r\n/)
  t.match(slow, /content-type: application\/problem\+json/i)
  t.match(bodyOf(slow), { status: 408, title: 'Request Timeout', code: 'GW_REQUEST_TIMEOUT' })

  const huge = await raw(gw.port, `GET /ping HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`)
  t.match(huge, /^HTTP\/1\.1 431 /)
  t.match(bodyOf(huge), { status: 431, code: 'GW_HEADERS_TOO_LARGE' })

  const garbage = await raw(gw.port, 'GET /ping HTTP/9.9 what\r\n\r\n')
  t.match(garbage, /^HTTP\/1\.1 400 Bad Request\r\n/)
  t.match(bodyOf(garbage), { status: 400, code: 'GW_BAD_REQUEST' })
  t.equal(upstream.total(), 0, 'none reached the upstream')
})

t.test('a method the gateway does not forward, and an unknown admin path: problem+json 404s', async t => {
  const upstream = await startUpstream(t)
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, ADMIN_TOKEN: 'a-token-of-16-chars-at-least' })
  const trace = await send(`${gw.url}/ping`, { method: 'TRACE' as never })
  t.equal(trace.status, 404)
  t.match(trace.headers['content-type'], /^application\/problem\+json/)
  t.match(JSON.parse(trace.body), { status: 404, code: 'GW_NOT_FOUND' })
  const admin = await send(`${gw.adminUrl}/admin/nothing-here`)
  t.equal(admin.status, 404)
  t.match(admin.headers['content-type'], /^application\/problem\+json/)
  t.match(JSON.parse(admin.body), { status: 404, code: 'GW_ADMIN_NOT_FOUND', detail: /no such admin endpoint: GET \/admin\/nothing-here/ })
  t.equal(upstream.total(), 0)
})

t.test('without ADMIN_TOKEN, the admin API paths say why they are not there', async t => {
  const gw = await startGateway(t, { UPSTREAM_URL: 'http://127.0.0.1:9' })
  const r = await send(`${gw.adminUrl}/admin/config`)
  t.equal(r.status, 404)
  t.match(JSON.parse(r.body), { code: 'GW_ADMIN_NOT_FOUND', detail: /need ADMIN_TOKEN/ })
})

t.test('a client that resets its connection mid-request gets nothing and breaks nothing', async t => {
  const upstream = await startUpstream(t)
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url })
  for (let i = 0; i < 5; i++) {
    const socket = connect(gw.port, '127.0.0.1')
    await once(socket, 'connect')
    socket.write('GET /ping HTTP/1.1\r\nHost: x\r\nX-Half: ')
    await new Promise(resolve => setTimeout(resolve, 20))
    socket.resetAndDestroy()
  }
  t.equal((await send(`${gw.url}/ping`)).status, 200, 'the gateway serves the next client')
  t.equal(upstream.total(), 1)
})
