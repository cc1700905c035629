/**
 * An upstream that holds requests open until the test lets them go, for in-flight limits:
 * `/hold...` waits, `/fail` answers 500, `/reset` cuts the connection, anything else 200.
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
  /** Answers every held request (200). */
  releaseAll: () => void
}

export async function startHoldingUpstream (t: Teardown): Promise<HoldingUpstream> {
  const held: ServerResponse[] = []
  const hits: string[] = []
  const server = createServer((req, res) => {
    hits.push(req.url!)
    req.resume()
    if (req.url!.startsWith('/hold')) {
      held.push(res)
      res.on('close', () => { const i = held.indexOf(res); if (i !== -1) held.splice(i, 1) })
    } else if (req.url === '/fail') {
      res.writeHead(500).end('failed')
    } else if (req.url === '/reset') {
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
    releaseAll: () => { for (const res of held.splice(0)) res.end('done') }
  }
}
