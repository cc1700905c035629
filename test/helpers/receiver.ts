/**
 * The tests' one receiver of POSTed bodies (alert webhooks, Alertmanager's deliveries,
 * OTLP exports): a real server on a free loopback port, closed at teardown. Each request's
 * whole body goes to `handle`, which may choose the answer's status (200 by default),
 * headers and a delay.
 */
import { once } from 'node:events'
import { createServer, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Teardown } from './tap.js'

export interface Answer { status?: number, headers?: Record<string, string>, delayMs?: number }

/** Resolves to the receiver's base URL (`http://127.0.0.1:<port>`). */
export async function startReceiver (t: Teardown, handle: (body: Buffer, req: IncomingMessage, n: number) => Answer | undefined): Promise<string> {
  let n = 0
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const answer = handle(Buffer.concat(chunks), req, n++) ?? {}
      setTimeout(() => {
        res.writeHead(answer.status ?? 200, answer.headers)
        res.end()
      }, answer.delayMs ?? 0)
    })
  }).listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.closeAllConnections(); return new Promise(resolve => server.close(resolve)) })
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}
