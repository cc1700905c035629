/**
 * Regressions (issue 25.5, 25.6): an upload longer than UPSTREAM_TIMEOUT_MS got a 504 while
 * still streaming to an upstream reading it all; and a 504 answered before the body was
 * read whole left the connection open with unread data, holding a SIGTERM drain for the
 * idle timeout. The timeout now runs from the last byte either way and, for the response
 * headers, from the end of the request body; such an error answer closes the connection.
 */
import t from 'tap'
import { once } from 'node:events'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { connect, type AddressInfo, type Socket } from 'node:net'
import { startGateway } from '../helpers/gateway.js'
import type { Teardown } from '../helpers/tap.js'

const TIMEOUT_MS = 500
const CHUNK = Buffer.alloc(64 * 1024, 0x61)

/** An upstream that reads each request's body whole, then does `then` with its size. */
async function upstreamThat (t: Teardown, then: (req: IncomingMessage, bytes: number, res: ServerResponse) => void): Promise<string> {
  const server = createServer((req, res) => {
    let bytes = 0
    req.on('data', (c: Buffer) => { bytes += c.length })
    req.on('end', () => then(req, bytes, res))
  }).listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.closeAllConnections(); server.close() })
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

/** Sends a POST of `chunks` 64 KiB chunks, one every `everyMs`, on a raw connection; resolves to what came back and when the body was done. */
async function upload (port: number, chunks: number, everyMs: number): Promise<{ text: string, bodyDoneAt: number, answerAt: number, socket: Socket }> {
  const socket = connect(port, '127.0.0.1')
  await once(socket, 'connect')
  let text = ''
  let answerAt = 0
  socket.on('data', (d: Buffer) => { text += d.toString(); answerAt ||= performance.now() })
  socket.on('error', () => {})
  socket.write(`POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: ${chunks * CHUNK.length}\r\n\r\n`)
  let bodyDoneAt = 0
  for (let i = 0; i < chunks; i++) {
    if (socket.destroyed || answerAt !== 0) break
    socket.write(CHUNK)
    bodyDoneAt = performance.now()
    if (i < chunks - 1) await new Promise(resolve => setTimeout(resolve, everyMs))
  }
  while (!/\r\n\r\n/.test(text) && !socket.destroyed) await new Promise(resolve => setTimeout(resolve, 10))
  return { text, bodyDoneAt, answerAt, socket }
}

t.test('an upload four times longer than UPSTREAM_TIMEOUT_MS passes while it flows', async t => {
  const url = await upstreamThat(t, (_req, bytes, res) => res.end(JSON.stringify({ bytes })))
  const gw = await startGateway(t, { UPSTREAM_URL: url, UPSTREAM_TIMEOUT_MS: String(TIMEOUT_MS) })
  const started = performance.now()
  const { text, socket } = await upload(gw.port, 20, 100)
  socket.destroy()
  t.ok(performance.now() - started > 3 * TIMEOUT_MS, `the upload took ${Math.round(performance.now() - started)} ms`)
  t.match(text, /^HTTP\/1\.1 200 /, 'answered 200, not 504')
  t.match(text, new RegExp(`"bytes":${20 * CHUNK.length}`), 'every byte reached the upstream')
})

t.test('the wait for the response headers counts from the end of the request body', async t => {
  const url = await upstreamThat(t, () => {}) // reads it all, never answers
  const gw = await startGateway(t, { UPSTREAM_URL: url, UPSTREAM_TIMEOUT_MS: String(TIMEOUT_MS) })
  const { text, bodyDoneAt, answerAt, socket } = await upload(gw.port, 10, 100)
  socket.destroy()
  t.match(text, /^HTTP\/1\.1 504 /)
  const after = answerAt - bodyDoneAt
  t.ok(after >= TIMEOUT_MS - 150 && after < TIMEOUT_MS * 1.1 + 400, `504 ${Math.round(after)} ms after the body's end`)
})

for (const [status, what, upstream] of [
  [504, 'reads nothing, answers nothing: the upload stalls on backpressure, then the idle timeout', (req: IncomingMessage) => { req.pause() }],
  [502, 'resets the connection as the upload starts', (req: IncomingMessage) => { req.socket.destroy() }]
] as const) {
  t.test(`a ${status} before the body was read whole (the upstream ${what}) closes the connection soon after, and a drain does not wait for it`, async t => {
    const server = createServer(upstream).listen(0, '127.0.0.1')
    await once(server, 'listening')
    t.teardown(() => { server.closeAllConnections(); server.close() })
    const gw = await startGateway(t, { UPSTREAM_URL: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, UPSTREAM_TIMEOUT_MS: String(TIMEOUT_MS) })
    const socket = connect(gw.port, '127.0.0.1')
    await once(socket, 'connect')
    let text = ''
    let answerAt = 0
    socket.on('data', (d: Buffer) => { text += d.toString(); answerAt ||= performance.now() })
    socket.on('error', () => {})
    const closed = new Promise(resolve => socket.once('close', resolve))
    socket.write(`POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: ${1024 * CHUNK.length}\r\n\r\n`)
    // Writes as fast as the gateway takes them, until it answers.
    const pump = (): void => { while (answerAt === 0 && !socket.destroyed && socket.write(CHUNK)); }
    socket.on('drain', pump)
    pump()
    while (answerAt === 0) await new Promise(resolve => setTimeout(resolve, 10))
    t.match(text, new RegExp(`^HTTP/1\\.1 ${status} `))
    t.match(text, /connection: close/i, 'the answer says the connection closes')
    const draining = performance.now()
    await gw.app.close()
    const drained = performance.now() - draining
    t.ok(drained < 1500, `the drain took ${Math.round(drained)} ms (the idle timeout is 60 s)`)
    await closed
    const open = performance.now() - answerAt
    t.ok(open < 1500, `the connection closed ${Math.round(open)} ms after the answer`)
  })
}
