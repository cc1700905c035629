/**
 * HTTP requests for tests with undici: from a chosen loopback source address when a test
 * needs several "clients" (127.0.0.2, 127.0.0.3, ...).
 */
import { connect } from 'node:net'
import { Agent, request, type Dispatcher } from 'undici'

const agents = new Map<string, Agent>()

/** An agent whose connections come from `localAddress` (any 127.x.y.z works on Linux). */
export function agentFrom (localAddress: string): Agent {
  let agent = agents.get(localAddress)
  if (!agent) {
    agent = new Agent({ localAddress })
    agents.set(localAddress, agent)
  }
  return agent
}

export interface Reply {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: string
}

export async function send (url: string, opts: Partial<Dispatcher.RequestOptions> & { from?: string } = {}): Promise<Reply> {
  const { from, ...rest } = opts
  const res = await request(url, { ...(from ? { dispatcher: agentFrom(from) } : {}), ...rest } as never)
  return { status: res.statusCode, headers: res.headers, body: await res.body.text() }
}

/** Sends `n` requests one after another and returns the statuses. */
export async function statuses (url: string, n: number, opts: Parameters<typeof send>[1] = {}): Promise<number[]> {
  const out: number[] = []
  for (let i = 0; i < n; i++) out.push((await send(url, opts)).status)
  return out
}

export interface RawAnswer {
  /** The status of the first response, if one came. */
  status: number | undefined
  /** Every status line received (several if requests were smuggled through). */
  statuses: number[]
  /** All that came back, byte for byte (latin1). */
  raw: string
  /** The server closed the connection. */
  closed: boolean
}

/**
 * The one raw exchange of the tests: writes `payload` (chunks `gapMs` apart) on a fresh
 * connection, with `end` then ends the sending side (a client with nothing more to say;
 * otherwise the connection stays open for the server to close, as a slow client's), and
 * resolves to all that came back once the server closes it or `waitMs` passes (10 s).
 */
export function rawExchange (port: number, payload: string | Buffer | Array<string | Buffer>, opts: { end?: boolean, waitMs?: number, gapMs?: number } = {}): Promise<RawAnswer> {
  const chunks = Array.isArray(payload) ? payload : [payload]
  return new Promise(resolve => {
    const socket = connect(port, '127.0.0.1')
    let raw = ''
    let closed = false
    let timer: NodeJS.Timeout
    const done = (): void => {
      clearTimeout(timer)
      socket.destroy()
      const statuses = [...raw.matchAll(/HTTP\/1\.[01] (\d{3})/g)].map(m => Number(m[1]))
      resolve({ status: statuses[0], statuses, raw, closed })
    }
    socket.on('data', (d: Buffer) => { raw += d.toString('latin1') })
    socket.on('error', () => {})
    socket.on('close', () => { closed = true; done() })
    socket.on('connect', async () => {
      for (const [i, c] of chunks.entries()) {
        if (i > 0 && opts.gapMs) await new Promise(resolve => setTimeout(resolve, opts.gapMs))
        if (socket.destroyed) return
        socket.write(c)
      }
      if (opts.end === true && !socket.destroyed) socket.end()
    })
    timer = setTimeout(done, opts.waitMs ?? 10_000)
  })
}
