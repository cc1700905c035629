/**
 * Is the upstream there? A TCP connect to UPSTREAM_URL's host and port (the name resolved
 * as the proxy would), bounded in time. Start-up warns when it fails (the gateway keeps
 * starting: in a compose stack the upstream may come up later), and /readyz shows the last
 * result, checked again when it is older than a few seconds.
 */
import { connect } from 'node:net'
import type { FastifyBaseLogger } from 'fastify'

/** Longest a check waits for the connection. */
export const PROBE_TIMEOUT_MS = 2_000
/** A result younger than this is reused (readiness probes may come every second). */
export const PROBE_CACHE_MS = 2_000

export interface UpstreamStatus {
  readonly reachable: boolean
  /** Why not, e.g. `getaddrinfo ENOTFOUND web`, `connect ECONNREFUSED 127.0.0.1:8080`. */
  readonly error: string | null
  readonly checkedAt: string
}

export class UpstreamProbe {
  private readonly host: string
  private readonly port: number
  private last: { at: number, status: UpstreamStatus } | undefined
  private pending: Promise<UpstreamStatus> | undefined

  constructor (upstreamUrl: string, private readonly timeoutMs = PROBE_TIMEOUT_MS) {
    const url = new URL(upstreamUrl)
    this.host = url.hostname.replace(/^\[|\]$/g, '')
    this.port = url.port !== '' ? Number(url.port) : (url.protocol === 'https:' ? 443 : 80)
  }

  /** The last result if recent, else a new check (concurrent callers share one). */
  check (): Promise<UpstreamStatus> {
    if (this.last !== undefined && performance.now() - this.last.at < PROBE_CACHE_MS) return Promise.resolve(this.last.status)
    this.pending ??= this.connect().then(status => {
      this.last = { at: performance.now(), status }
      this.pending = undefined
      return status
    })
    return this.pending
  }

  private connect (): Promise<UpstreamStatus> {
    return new Promise(resolve => {
      const socket = connect({ host: this.host, port: this.port })
      const done = (error: string | null) => {
        clearTimeout(timer)
        socket.destroy()
        resolve({ reachable: error === null, error, checkedAt: new Date().toISOString() })
      }
      const timer = setTimeout(() => done(`no connection within ${this.timeoutMs} ms`), this.timeoutMs)
      timer.unref()
      socket.once('connect', () => done(null))
      socket.once('error', (err: Error) => done(err.message))
    })
  }
}

/** Start-up's one look at the upstream: a warning when it cannot be reached (yet). */
export async function warnIfUnreachable (probe: UpstreamProbe, log: FastifyBaseLogger, upstreamUrl: string): Promise<void> {
  const status = await probe.check()
  if (!status.reachable) log.warn({ upstream: upstreamUrl, error: status.error }, 'the upstream is not reachable (yet): requests get 502 until it is; /readyz shows its state')
}
