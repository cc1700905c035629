/**
 * HTTP requests for tests with undici: from a chosen loopback source address when a test
 * needs several "clients" (127.0.0.2, 127.0.0.3, ...).
 */
import { connect } from 'node:net'
import { once } from 'node:events'
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

/**
 * Writes raw bytes on a fresh connection and resolves to all that came back once it
 * closes. `end`: also end the sending side (a client with nothing more to say); otherwise
 * the connection stays open for the server to close (a slow client).
 */
export async function rawExchange (port: number, bytes: string, end = false): Promise<string> {
  const socket = connect(port, '127.0.0.1')
  await once(socket, 'connect')
  let text = ''
  socket.on('data', (d: Buffer) => { text += d.toString() })
  socket.on('error', () => {})
  socket.write(bytes)
  if (end) socket.end()
  await once(socket, 'close')
  return text
}
