/**
 * A demo upstream standing in for the user's web server: `GET /ping` → {"message":"pong"},
 * `GET /slow?ms=N` → the same after N ms,
 * and `/echo` (any method) → what it received (method, URL, headers, body size), with the
 * body streamed and counted, never buffered. On any path, `?status=NNN` answers with that
 * status and `?cost=N` adds `x-request-cost: N`, for trying rules that see the response.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'

export type Handler = (req: IncomingMessage, res: ServerResponse) => boolean

function json (res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

/** Handles the demo routes; returns false for any other path. */
export const demoHandler: Handler = (req, res) => {
  const path = req.url!.split('?', 1)[0]
  if (path === '/ping' && (req.method === 'GET' || req.method === 'HEAD')) {
    json(res, 200, { message: 'pong' })
    return true
  }
  if (path === '/slow' && req.method === 'GET') {
    // `/slow?ms=N`: answers after N ms (at most 10 s), for trying in-flight limits.
    const ms = Math.min(10_000, Math.max(0, Number(new URL(req.url!, 'http://x').searchParams.get('ms')) || 0))
    setTimeout(json, ms, res, 200, { message: 'pong', waitedMs: ms })
    return true
  }
  if (path === '/echo' || path?.startsWith('/echo/')) {
    let bodyBytes = 0
    req.on('data', (chunk: Buffer) => { bodyBytes += chunk.length })
    req.on('end', () => json(res, 200, { method: req.method, url: req.url, headers: req.headers, bodyBytes }))
    return true
  }
  return false
}

/** `?status=NNN` (200 to 599, else ignored) and `?cost=N`, on any path. */
function answerAsAsked (req: IncomingMessage, res: ServerResponse): boolean {
  const q = req.url!.indexOf('?')
  if (q === -1) return false
  const params = new URLSearchParams(req.url!.slice(q + 1))
  const cost = params.get('cost')
  if (cost !== null) res.setHeader('x-request-cost', cost)
  const status = Number(params.get('status'))
  if (!Number.isInteger(status) || status < 200 || status > 599) return false
  req.resume()
  json(res, status, { status })
  return true
}

/** An http.Server running `handlers` in order, then the demo routes, then 404. */
export function createDemoUpstream (...handlers: Handler[]): Server {
  return createServer((req, res) => {
    for (const h of handlers) if (h(req, res)) return
    if (answerAsAsked(req, res)) return
    if (demoHandler(req, res)) return
    req.resume()
    json(res, 404, { message: 'not found' })
  })
}
