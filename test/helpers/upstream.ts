/**
 * A real upstream on 127.0.0.1:0 for tests: the demo routes plus
 *   /slow?ms=N    answers after N ms
 *   /status/NNN   answers with that status
 *   /upload       counts the streamed body
 *   /big?bytes=N  streams N bytes back
 *   WebSocket     echoes messages
 * and counts every request it receives.
 */
import type { Teardown } from './tap.js'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { WebSocketServer } from 'ws'
import { createDemoUpstream } from '../../src/demo/upstream.js'

export interface TestUpstream {
  url: string
  port: number
  /** Requests received, by path (without query). */
  hits: Map<string, number>
  total (): number
  /** Bytes received by /upload requests so far. */
  uploaded: { bytes: number }
  close (): Promise<void>
}

function query (req: IncomingMessage, name: string): string | null {
  return new URL(req.url ?? '/', 'http://x').searchParams.get(name)
}

export async function startUpstream (t: Teardown): Promise<TestUpstream> {
  const hits = new Map<string, number>()
  const uploaded = { bytes: 0 }
  const timers = new Set<NodeJS.Timeout>()
  const server = createDemoUpstream(
    (req) => {
      const path = (req.url ?? '/').split('?', 1)[0]!
      hits.set(path, (hits.get(path) ?? 0) + 1)
      return false
    },
    (req: IncomingMessage, res: ServerResponse) => {
      const path = (req.url ?? '/').split('?', 1)[0]!
      if (path === '/slow') {
        const timer = setTimeout(() => {
          timers.delete(timer)
          res.writeHead(200, { 'content-type': 'application/json' })
          res.end('{"slow":true}')
        }, Number(query(req, 'ms') ?? 1000))
        timers.add(timer)
        req.resume()
        return true
      }
      if (path.startsWith('/status/')) {
        req.resume()
        res.writeHead(Number(path.slice('/status/'.length)), { 'content-type': 'text/plain' })
        res.end('status')
        return true
      }
      if (path === '/upload') {
        let bytes = 0
        req.on('data', (c: Buffer) => { bytes += c.length; uploaded.bytes += c.length })
        req.on('end', () => {
          res.writeHead(200, { 'content-type': 'application/json' })
          res.end(JSON.stringify({ bytes }))
        })
        return true
      }
      if (path === '/big') {
        req.resume()
        let left = Number(query(req, 'bytes') ?? 0)
        const chunk = Buffer.alloc(64 * 1024, 0x61)
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': left })
        const pump = (): void => {
          while (left > 0) {
            const n = Math.min(left, chunk.length)
            left -= n
            if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
              res.once('drain', pump)
              return
            }
          }
          res.end()
        }
        pump()
        return true
      }
      return false
    }
  )
  const wss = new WebSocketServer({ server })
  wss.on('connection', (ws, req) => {
    hits.set('ws:' + (req.url ?? '/'), (hits.get('ws:' + (req.url ?? '/')) ?? 0) + 1)
    ws.on('message', (data, isBinary) => ws.send(isBinary ? data : `echo:${data.toString()}`))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const port = (server.address() as AddressInfo).port
  const upstream: TestUpstream = {
    url: `http://127.0.0.1:${port}`,
    port,
    hits,
    uploaded,
    total: () => [...hits.values()].reduce((a, b) => a + b, 0),
    async close () {
      for (const timer of timers) clearTimeout(timer)
      for (const client of wss.clients) client.terminate()
      wss.close()
      server.closeAllConnections()
      await new Promise<void>(resolve => server.close(() => resolve()))
    }
  }
  t.teardown(() => upstream.close())
  return upstream
}
