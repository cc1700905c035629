/**
 * The hostile suite's instruments: raw sockets for what no well-behaved client sends, a
 * tally of answers by class, and the figures each scenario writes to
 * test-artifacts/hostile/<scenario>.json (and asserts).
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { fileURLToPath } from 'node:url'

export const RESULTS_DIR = fileURLToPath(new URL('../../../test-artifacts/hostile/', import.meta.url))

export interface Figures {
  scenario: string
  /** Requests (or attempts) sent. */
  sent: number
  /** Answers by status class (2xx, 4xx, ...) or `closed` (connection closed without an answer by design). */
  answered: Record<string, number>
  /** sent - answered: requests that got nothing at all. */
  lost: number
  /** Requests the upstream saw. */
  upstream: number
  /** Requests that reached the upstream although they should not have. */
  smuggled: number
  /** The gateway process exited during the scenario. */
  crashes: number
  /** The gateway's resident memory at the end. */
  rssBytes: number
  notes?: Record<string, unknown>
}

export function writeFigures (f: Figures): Figures {
  mkdirSync(RESULTS_DIR, { recursive: true })
  writeFileSync(`${RESULTS_DIR}${f.scenario}.json`, JSON.stringify(f, null, 2) + '\n')
  return f
}

/** Counts answers by class. */
export class Tally {
  sent = 0
  readonly answered: Record<string, number> = {}
  record (status: number | 'closed'): void {
    const key = status === 'closed' ? 'closed' : `${Math.floor(status / 100)}xx`
    this.answered[key] = (this.answered[key] ?? 0) + 1
  }

  get total (): number {
    return Object.values(this.answered).reduce((a, b) => a + b, 0)
  }
}

export interface RawAnswer {
  /** The status of the first response, if one came. */
  status: number | undefined
  /** Every status line received (several if requests were smuggled through). */
  statuses: number[]
  raw: string
  /** The server closed the connection. */
  closed: boolean
}

/**
 * Writes `payload` (as `chunks`, `gapMs` apart) on a fresh connection and collects what
 * comes back until the server closes or `waitMs` passes.
 */
export function rawExchange (port: number, payload: string | Buffer | Array<string | Buffer>, opts: { waitMs?: number, gapMs?: number } = {}): Promise<RawAnswer> {
  const chunks = Array.isArray(payload) ? payload : [payload]
  return new Promise(resolve => {
    const socket = connect(port, '127.0.0.1')
    let raw = ''
    let closed = false
    let timer: NodeJS.Timeout
    const done = () => {
      clearTimeout(timer)
      socket.destroy()
      const statuses = [...raw.matchAll(/HTTP\/1\.[01] (\d{3})/g)].map(m => Number(m[1]))
      resolve({ status: statuses[0], statuses, raw, closed })
    }
    socket.on('data', d => { raw += d.toString('latin1') })
    socket.on('error', () => {})
    socket.on('close', () => { closed = true; done() })
    socket.on('connect', async () => {
      for (const [i, c] of chunks.entries()) {
        if (i > 0 && opts.gapMs) await new Promise(r => setTimeout(r, opts.gapMs))
        if (socket.destroyed) return
        socket.write(c)
      }
    })
    timer = setTimeout(done, opts.waitMs ?? 2000)
  })
}
