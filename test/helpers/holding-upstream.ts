/**
 * An upstream that holds requests open until the test lets them go, for in-flight limits
 * and charges settled by the response: `/hold...` (or a path with a `hold` segment) waits,
 * `/fail` answers 500, `/reset` cuts the connection (both also as a segment), anything
 * else 200. On any path, `?status=NNN` sets the status and
 * `?cost=V` sends `x-request-cost: V` (a held request gets them when let go).
 */
import { once } from 'node:events'
import { createServer, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Teardown } from './tap.js'

export interface HoldingUpstream {
  url: string
  /** Requests that reached it, by path. */
  hits: string[]
  /** Held requests not yet let go. */
  held: () => number
  /** Answers every held request (200, or `status`). */
  releaseAll: (status?: number) => void
}

export async function startHoldingUpstream (t: Teardown): Promise<HoldingUpstream> {
  const held: ServerResponse[] = []
  const hits: string[] = []
  const server = createServer((req, res) => {
    hits.push(req.url!)
    req.resume()
    const query = new URL(req.url!, 'http://x').searchParams
    const cost = query.get('cost')
    if (cost !== null) res.setHeader('x-request-cost', cost)
    if (query.has('status')) res.statusCode = Number(query.get('status'))
    const last = new URL(req.url!, 'http://x').pathname.split('/').find(part => part === 'hold' || part === 'fail' || part === 'reset')
    if (req.url!.startsWith('/hold') || last === 'hold') {
      held.push(res)
      res.on('close', () => { const i = held.indexOf(res); if (i !== -1) held.splice(i, 1) })
    } else if (req.url === '/fail' || last === 'fail') {
      res.writeHead(500).end('failed')
    } else if (req.url === '/reset' || last === 'reset') {
      req.socket.destroy()
    } else {
      res.end('ok')
    }
  }).listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.closeAllConnections(); return new Promise(resolve => server.close(resolve)) })
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    hits,
    held: () => held.length,
    releaseAll: (status?: number) => {
      for (const res of held.splice(0)) {
        if (status !== undefined) res.statusCode = status
        res.end('done')
      }
    }
  }
}
