/**
 * The proxy's edges: Expect: 100-continue, informational and bodiless upstream answers, a
 * client that leaves (its upstream request is cancelled), an upstream that dies mid-body,
 * multi-valued response headers, and backpressure from a slow client.
 */
import t from 'tap'
import { connect, type AddressInfo } from 'node:net'
import { once } from 'node:events'
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http'
import { startGateway } from '../helpers/gateway.js'
import { rawExchange, send } from '../helpers/http.js'
import { eventually } from '../helpers/load.js'

async function upstreamWith (t: { teardown (fn: () => unknown): void }, handler: (req: IncomingMessage, res: ServerResponse) => void) {
  const server = createServer(handler).listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.closeAllConnections(); server.close() })
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

t.test('Expect: 100-continue: the client is told to send, and the body arrives', async t => {
  const url = await upstreamWith(t, (req, res) => {
    let bytes = 0
    req.on('data', (c: Buffer) => { bytes += c.length })
    req.on('end', () => res.end(JSON.stringify({ bytes, expect: req.headers.expect ?? null })))
  })
  const gw = await startGateway(t, { UPSTREAM_URL: url })
  const req = httpRequest(`${gw.url}/upload`, { method: 'POST', headers: { expect: '100-continue', 'content-length': '5' } })
  const continued = once(req, 'continue')
  req.flushHeaders()
  await continued
  req.end('hello')
  const [res] = await once(req, 'response') as [IncomingMessage]
  let body = ''
  for await (const c of res) body += String(c)
  t.equal(res.statusCode, 200)
  t.same(JSON.parse(body), { bytes: 5, expect: null }, 'the body went through; Expect is this hop\'s')
})

t.test('an informational 103 is not passed on; 304 and 204 carry no body', async t => {
  const url = await upstreamWith(t, (req, res) => {
    if (req.url === '/hints') {
      res.writeEarlyHints({ link: '</style.css>; rel=preload' })
      res.end('final')
    } else if (req.url === '/304') {
      res.writeHead(304, { etag: '"x"' })
      res.end()
    } else {
      res.writeHead(204, { 'x-done': '1' })
      res.end()
    }
  })
  const gw = await startGateway(t, { UPSTREAM_URL: url })
  const hints = await send(`${gw.url}/hints`)
  t.equal(hints.status, 200)
  t.equal(hints.body, 'final')
  const notModified = await send(`${gw.url}/304`)
  t.equal(notModified.status, 304)
  t.equal(notModified.headers.etag, '"x"')
  t.equal(notModified.body, '')
  const noContent = await send(`${gw.url}/204`)
  t.equal(noContent.status, 204)
  t.equal(noContent.headers['x-done'], '1')
  t.equal(noContent.body, '')
})

t.test('a client that leaves cancels its upstream request', async t => {
  let closed = 0
  const url = await upstreamWith(t, (req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' })
    res.write('start') // then nothing, until the gateway gives up on it
    res.on('close', () => { closed++ })
  })
  const gw = await startGateway(t, { UPSTREAM_URL: url })
  for (const when of ['before the response', 'mid-body']) {
    const socket = connect(gw.port, '127.0.0.1')
    await once(socket, 'connect')
    socket.write('GET /hang HTTP/1.1\r\nHost: x\r\n\r\n')
    if (when === 'mid-body') await once(socket, 'data')
    else await new Promise(resolve => setTimeout(resolve, 5))
    socket.destroy()
  }
  t.ok(await eventually(() => closed === 2, 5000), `the upstream saw both requests end (${closed})`)
})

t.test('an upstream that dies mid-body ends the client response; the next request is fine', async t => {
  const url = await upstreamWith(t, (req, res) => {
    if (req.url === '/ok') { res.end('ok'); return }
    res.writeHead(200, { 'content-length': '100' })
    res.write('only part of it')
    setTimeout(() => req.socket.destroy(), 20)
  })
  const gw = await startGateway(t, { UPSTREAM_URL: url })
  const text = (await rawExchange(gw.port, 'GET /die HTTP/1.1\r\nHost: x\r\n\r\n')).raw
  t.match(text, /^HTTP\/1\.1 200/)
  t.match(text, /only part of it$/, 'the part sent, then the connection closed')
  t.equal((await send(`${gw.url}/ok`)).body, 'ok')
})

t.test('multi-valued response headers arrive as they were sent', async t => {
  const url = await upstreamWith(t, (_req, res) => {
    res.setHeader('set-cookie', ['a=1; Path=/', 'b=2; Path=/'])
    res.setHeader('x-multi', ['one', 'two'])
    res.end('cookies')
  })
  const gw = await startGateway(t, { UPSTREAM_URL: url })
  const r = await send(`${gw.url}/c`)
  t.same(r.headers['set-cookie'], ['a=1; Path=/', 'b=2; Path=/'])
  t.same(r.headers['x-multi'], ['one', 'two'], 'two lines stay two lines')
  t.ok(r.headers['x-ratelimit-limit'] !== undefined, 'beside the gateway\'s own headers')
})

t.test('a slow client holds the upstream back instead of the gateway buffering', async t => {
  const MiB = 1024 * 1024
  let written = 0
  const url = await upstreamWith(t, (_req, res) => {
    const chunk = Buffer.alloc(64 * 1024, 0x61)
    res.writeHead(200, { 'content-length': String(64 * MiB) })
    const pump = (): void => {
      while (written < 64 * MiB) {
        written += chunk.length
        if (!res.write(chunk)) { res.once('drain', pump); return }
      }
      res.end()
    }
    pump()
  })
  const gw = await startGateway(t, { UPSTREAM_URL: url })
  const socket = connect(gw.port, '127.0.0.1')
  await once(socket, 'connect')
  socket.write('GET /big HTTP/1.1\r\nHost: x\r\n\r\n')
  await once(socket, 'data')
  socket.pause() // a client that stops reading
  await new Promise(resolve => setTimeout(resolve, 500))
  t.ok(written < 16 * MiB, `the upstream was held back: ${(written / MiB).toFixed(1)} MiB of 64 written`)
  let received = 0
  socket.on('data', (d: Buffer) => { received += d.length })
  socket.resume()
  t.ok(await eventually(() => written === 64 * MiB && received > 60 * MiB, 10_000), 'and all of it flows once the client reads')
  socket.destroy()
})

t.test('the gateway\'s rate-limit headers replace an upstream\'s own; an empty reason phrase gets the standard one', async t => {
  const url = await upstreamWith(t, (req, res) => {
    if (req.url === '/blank') {
      // A raw status line with an empty reason phrase, as some servers send.
      req.socket.end('HTTP/1.1 201 \r\ncontent-length: 2\r\nconnection: close\r\n\r\nok')
      return
    }
    res.writeHead(200, { 'x-ratelimit-limit': '999', ratelimit: '"upstream";r=1;t=1', 'x-app': 'kept' })
    res.end('hi')
  })
  const gw = await startGateway(t, { UPSTREAM_URL: url, RATE_LIMIT_RATE: '1/h', RATE_LIMIT_BURST: '5' })
  const r = await send(`${gw.url}/own`)
  t.equal(r.headers['x-ratelimit-limit'], '5', 'the gateway\'s limit, once')
  t.equal(r.headers.ratelimit, '"default";r=4;t=3600')
  t.equal(r.headers['x-app'], 'kept')
  const text = (await rawExchange(gw.port, 'GET /blank HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')).raw
  t.match(text, /^HTTP\/1\.1 201 Created\r\n/)
})
