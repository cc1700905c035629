/**
 * Every timeout fires at its value (within 10% and a few ms; the bounds here add slack for
 * a loaded machine, still far below what undici's coarse timers or fastify's 72 s
 * keep-alive default gave).
 */
import t from 'tap'
import { connect } from 'node:net'
import { once } from 'node:events'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { startUpstream } from '../helpers/upstream.js'
import { startGateway } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'
import { keepAliveTimeouts } from '../../src/proxy/listener.js'

t.test('CLIENT_IDLE_TIMEOUT_MS closes an idle keep-alive connection at that time, and says so', async t => {
  const upstream = await startUpstream(t)
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, CLIENT_IDLE_TIMEOUT_MS: '3000' })
  const socket = connect(gw.port, '127.0.0.1')
  t.teardown(() => { socket.destroy() })
  await once(socket, 'connect')
  let text = ''
  socket.on('data', (d: Buffer) => { text += d.toString() })
  socket.write('GET /ping HTTP/1.1\r\nHost: x\r\n\r\n')
  const answered = await new Promise<number>(resolve => {
    const check = () => { if (text.includes('pong')) { socket.off('data', check); resolve(Date.now()) } }
    socket.on('data', check)
  })
  t.match(text, /^HTTP\/1\.1 200/)
  t.match(text.toLowerCase(), /keep-alive: timeout=2\r\n/, 'the advertised timeout leaves the client time to stop reusing it')
  const closedAt = await Promise.race([
    once(socket, 'close').then(() => Date.now()),
    new Promise<number>(resolve => setTimeout(() => resolve(Infinity), 10_000))
  ])
  const idle = closedAt - answered
  t.ok(idle >= 2900 && idle < 3600, `closed after ${idle} ms idle (setting 3000)`)
})

for (const ms of [300, 2000]) {
  t.test(`UPSTREAM_TIMEOUT_MS=${ms}: no response headers → 504 at ${ms} ms`, async t => {
    const upstream = await startUpstream(t)
    const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, UPSTREAM_TIMEOUT_MS: String(ms) })
    await send(`${gw.url}/ping`) // a connection ready: the timing is the timeout's alone
    const started = performance.now()
    const r = await send(`${gw.url}/slow?ms=8000`)
    const took = performance.now() - started
    t.equal(r.status, 504)
    t.match(JSON.parse(r.body), { code: 'GW_UPSTREAM_TIMEOUT' })
    t.ok(took >= ms - 5 && took < ms * 1.1 + 150, `504 after ${Math.round(took)} ms`)
  })
}

t.test('UPSTREAM_TIMEOUT_MS bounds an idle body too: the response is cut at that time', async t => {
  const upstream = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' })
    res.write('first part') // then nothing
  }).listen(0, '127.0.0.1')
  await once(upstream, 'listening')
  t.teardown(() => { upstream.closeAllConnections(); upstream.close() })
  const gw = await startGateway(t, { UPSTREAM_URL: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`, UPSTREAM_TIMEOUT_MS: '400' })
  const socket = connect(gw.port, '127.0.0.1')
  t.teardown(() => { socket.destroy() })
  await once(socket, 'connect')
  let text = ''
  let firstAt = 0
  socket.on('data', (d: Buffer) => { text += d.toString(); if (firstAt === 0 && text.includes('first part')) firstAt = performance.now() })
  socket.write('GET /stall HTTP/1.1\r\nHost: x\r\n\r\n')
  await once(socket, 'close')
  const cut = performance.now() - firstAt
  t.match(text, /^HTTP\/1\.1 200/)
  t.ok(firstAt > 0, 'the first part arrived')
  t.ok(cut >= 350 && cut < 400 * 1.1 + 150, `cut ${Math.round(cut)} ms after the last data`)
})

t.test('the keep-alive settings close the socket at the idle timeout on either Node line', async t => {
  // Node 20: a fixed 1 s buffer; Node 24: a settable one, kept small for short timeouts.
  t.same(keepAliveTimeouts(3000, false), { keepAliveTimeout: 2000, bufferMs: 1000 })
  t.same(keepAliveTimeouts(3000, true), { keepAliveTimeout: 2250, bufferMs: 750 })
  t.same(keepAliveTimeouts(60_000, true), { keepAliveTimeout: 59_000, bufferMs: 1000 })
  t.same(keepAliveTimeouts(100, false), { keepAliveTimeout: 1, bufferMs: 1000 }, 'below the fixed buffer: as short as Node allows')
  for (const settable of [false, true]) {
    for (const idle of [2000, 3000, 60_000]) {
      const k = keepAliveTimeouts(idle, settable)
      t.equal(k.keepAliveTimeout + k.bufferMs, idle, `${idle} ms (${settable ? 'Node 24' : 'Node 20'}): closes at the setting`)
    }
  }
})

t.test('a request that waits for a free upstream connection past UPSTREAM_TIMEOUT_MS is not sent late: 504', async t => {
  let pings = 0
  const upstream = createServer((req, res) => {
    if (req.url === '/ping') { pings++; res.end('pong'); return }
    // Headers at once, then a chunk every 100 ms: never idle, busy for 1.2 s.
    res.writeHead(200, { 'content-type': 'text/plain' })
    let n = 0
    const timer = setInterval(() => { res.write('.'); if (++n === 12) { clearInterval(timer); res.end() } }, 100)
  }).listen(0, '127.0.0.1')
  await once(upstream, 'listening')
  t.teardown(() => { upstream.closeAllConnections(); upstream.close() })
  const gw = await startGateway(t, { UPSTREAM_URL: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`, UPSTREAM_TIMEOUT_MS: '500', UPSTREAM_CONNECTIONS: '1' })
  const busy = send(`${gw.url}/trickle`)
  await new Promise(resolve => setTimeout(resolve, 50))
  const queued = await send(`${gw.url}/ping`)
  t.equal(queued.status, 504, 'the one connection was busy the whole time')
  t.match(JSON.parse(queued.body), { code: 'GW_UPSTREAM_TIMEOUT' })
  t.equal((await busy).status, 200, 'the trickling response completed')
  t.equal(pings, 0, 'the expired request never reached the upstream')
})
