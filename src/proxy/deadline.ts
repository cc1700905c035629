/**
 * UPSTREAM_TIMEOUT_MS to the millisecond. undici's own headersTimeout and bodyTimeout run
 * on its coarse "fast timers" (a 500 ms tick): a 300 ms timeout fired after ~1 s, a 2 s one
 * after ~2.5 s. This pool turns them off and keeps one ordinary timer per request instead:
 * from dispatch to the response headers, then re-armed by each body chunk (an idle body).
 * On expiry the request is aborted with undici's own timeout error, so everything above
 * (reply-from's error path → 504) sees what it saw before.
 */
import { Pool, errors, type Dispatcher } from 'undici'

type LegacyHandler = Dispatcher.DispatchHandler & {
  onConnect?: (abort: (err?: Error) => void, context?: unknown) => void
  onHeaders?: (status: number, headers: Buffer[], resume: () => void, statusText: string) => boolean
  onData?: (chunk: Buffer) => boolean
  onComplete?: (trailers: Buffer[] | null) => void
  onError?: (err: Error) => void
}

function expire (h: DeadlineHandler): void {
  h.timer = undefined
  const err = h.inBody ? new errors.BodyTimeoutError() : new errors.HeadersTimeoutError()
  if (h.abort !== undefined) h.abort(err)
  else h.expired = err
}

/**
 * Wraps undici's request handler (legacy callbacks, as Pool.request passes them; it has no
 * upgrade or progress callbacks: WebSocket upgrades go through @fastify/http-proxy's own
 * client, not this pool).
 */
class DeadlineHandler {
  timer: NodeJS.Timeout | undefined
  abort: ((err?: Error) => void) | undefined = undefined
  expired: Error | undefined = undefined
  inBody = false

  constructor (private readonly inner: LegacyHandler, ms: number) {
    this.timer = setTimeout(expire, ms, this)
  }

  private stop (): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer)
      this.timer = undefined
    }
  }

  onConnect (abort: (err?: Error) => void, context?: unknown): void {
    this.abort = abort
    // Expired while waiting for a connection: fail now rather than send it late.
    if (this.expired !== undefined) {
      abort(this.expired)
      return
    }
    this.inner.onConnect!(abort, context)
  }

  onHeaders (status: number, headers: Buffer[], resume: () => void, statusText: string): boolean {
    // 1xx informational responses are not the response: the headers deadline runs on.
    if (status >= 200) {
      this.inBody = true
      this.timer?.refresh()
    }
    return this.inner.onHeaders!(status, headers, resume, statusText)
  }

  onData (chunk: Buffer): boolean {
    this.timer?.refresh()
    return this.inner.onData!(chunk)
  }

  onComplete (trailers: Buffer[] | null): void {
    this.stop()
    this.inner.onComplete!(trailers)
  }

  onError (err: Error): void {
    this.stop()
    this.inner.onError!(err)
  }

}

/** A Pool whose requests time out after exactly `timeoutMs` without headers or body data. */
export class DeadlinePool extends Pool {
  constructor (url: string, private readonly timeoutMs: number, options: Pool.Options) {
    super(url, { ...options, headersTimeout: 0, bodyTimeout: 0 })
  }

  override dispatch (opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    return super.dispatch(opts, new DeadlineHandler(handler as LegacyHandler, this.timeoutMs) as unknown as Dispatcher.DispatchHandler)
  }
}
