/**
 * The ceiling for a Node proxy: node:http in, undici's Pool.dispatch out, raw headers
 * passed both ways, the body written as it comes, with backpressure, and nothing else (no
 * routing, no header hygiene, no timeouts). `node dist/bench/dispatch-proxy.js PORT UPSTREAM_URL`
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { Pool, type Dispatcher } from 'undici'

const [port, upstream] = [Number(process.argv[2]), process.argv[3]!]
const pool = new Pool(upstream, { connections: 128, pipelining: 1 })

class Handler {
  private resume: (() => void) | undefined
  constructor (private readonly res: ServerResponse) {}
  onConnect (): void {}
  onHeaders (status: number, raw: Buffer[], resume: () => void): boolean {
    this.resume = resume
    const headers: string[] = []
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!.toString('latin1')
      if (name.length === 17 && name.toLowerCase() === 'transfer-encoding') continue
      headers.push(name, raw[i + 1]!.toString('latin1'))
    }
    this.res.writeHead(status, headers)
    return true
  }

  onData (chunk: Buffer): boolean { return this.res.write(chunk) }
  onComplete (): void { this.res.end() }
  onError (): void {
    if (this.res.headersSent) this.res.destroy()
    else { this.res.statusCode = 502; this.res.end() }
  }
}

createServer((req: IncomingMessage, res: ServerResponse) => {
  const headers: string[] = []
  const raw = req.rawHeaders
  for (let i = 0; i < raw.length; i += 2) {
    const lower = raw[i]!.toLowerCase()
    if (lower === 'host' || lower === 'connection') continue
    headers.push(raw[i]!, raw[i + 1]!)
  }
  pool.dispatch({ path: req.url!, method: req.method as Dispatcher.HttpMethod, headers, body: req.method === 'GET' || req.method === 'HEAD' ? null : req }, new Handler(res) as unknown as Dispatcher.DispatchHandler)
}).listen(port, '127.0.0.1')
process.on('SIGTERM', () => process.exit(0))
