/**
 * The least a Node proxy does with undici's dispatch API: the request's raw headers out
 * (host and connection dropped), the response's raw headers and body back as they come,
 * with backpressure. Shared by the ceiling (dispatch-proxy.ts) and the Fastify floors
 * (fastify-floor.ts).
 */
import type { IncomingMessage, ServerResponse } from 'node:http'

export function headersOf (req: IncomingMessage): string[] {
  const headers: string[] = []
  const raw = req.rawHeaders
  for (let i = 0; i < raw.length; i += 2) {
    const lower = raw[i]!.toLowerCase()
    if (lower === 'host' || lower === 'connection') continue
    headers.push(raw[i]!, raw[i + 1]!)
  }
  return headers
}

export class Handler {
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

