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
import { startUpstream } from './helpers/upstream.js'
import { startGateway } from './helpers/gateway.js'
import { send } from './helpers/http.js'

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
