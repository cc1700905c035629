/**
 * The HTTP hot path: a client request forwarded to the upstream with undici's lowest-level
 * API (Pool.dispatch), its response written straight to the client's ServerResponse.
 *
 * - Bodies stream both ways with backpressure: the client's request stream is the
 *   upstream request body (undici pulls it); an upstream chunk the client cannot take yet
 *   pauses the upstream parser until the client drains.
 * - Headers travel as flat arrays, never as objects: the client's raw headers minus the
 *   hop-by-hop ones (and those `Connection` names), plus X-Forwarded-*; the upstream's raw
 *   headers likewise on the way back. undici sets Host from the upstream's origin.
 * - UPSTREAM_TIMEOUT_MS to the millisecond (deadlines.ts: one timer for every request),
 *   re-armed by every byte either way: from dispatch, by each request-body chunk sent (an
 *   upload is never cut while it flows), from the body's end to the response headers, then
 *   by every response-body chunk. (undici's own headersTimeout/bodyTimeout run on coarse 500 ms
 *   "fast timers": off.)
 * - A 502/504 answered before the request body was read whole closes the connection after
 *   the answer: the unread rest would otherwise hold it, and a drain at SIGTERM, until the
 *   idle timeout.
 * - One client request, at most one upstream request: nothing is retried.
 * - Upstream timing and outcome are reported here, where they happen: from dispatch to
 *   the response's end, with its status, or the failure answered (UpstreamObserver).
 * - A client that goes away aborts its upstream request; an upstream that fails before
 *   its headers is a 502/504 problem answer, after them the client connection is cut.
 *
 * Per request: one handler object, two header arrays. No closure: the handler's
 * methods and two module-level listeners do the work.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify'
import { errors, Pool, type Dispatcher } from 'undici'
import { InvalidUpstreamStatusError, PROBLEM_CONTENT_TYPE_UTF8, renderProblem, UpstreamTimeoutError, UpstreamUnavailableError } from '../errors.js'
import { createThrottledLog } from '../log.js'
import { RATE_LIMIT_HEADER_NAMES } from '../core/headers.js'
import { Deadlines, type Waiting } from './deadlines.js'

export interface ForwardOptions {
  upstreamUrl: string
  timeoutMs: number
  connections: number
  /** Whether the direct peer is a trusted proxy (whose X-Forwarded-* are kept). */
  isTrustedPeer: (address: string) => boolean
  /** Told how each forwarded request ended (metrics, adaptive limits). */
  observer?: UpstreamObserver
  /** Tracing (on with an OTLP endpoint): a span per upstream call, its traceparent sent along. */
  tracer?: UpstreamTracer
  log: FastifyBaseLogger
}

/** An upstream call's span: ended with the upstream's status, or what went wrong. */
export interface UpstreamSpan {
  end (status: number | undefined, error: string | undefined): void
}

/** Starts the span of a forwarded request's upstream call, adding its trace context to `headers`. */
export interface UpstreamTracer {
  upstream (request: FastifyRequest, headers: string[], method: string, path: string): UpstreamSpan
}

/** How forwarded requests end. Durations run from dispatch to the end of the response. */
export interface UpstreamObserver {
  /** The upstream's response was passed on whole. */
  response (ms: number, status: number): void
  /** The upstream did not answer: refused/reset (502) or too slow (504). */
  failure (ms: number, kind: 'unavailable' | 'timeout'): void
}

/** Longest connect attempt, whatever UPSTREAM_TIMEOUT_MS says. */
export const MAX_CONNECT_TIMEOUT_MS = 10_000

const TIMEOUT = new UpstreamTimeoutError()
const UNAVAILABLE = new UpstreamUnavailableError()
const TIMEOUT_BODY = renderProblem(504, TIMEOUT.message, TIMEOUT.code)
const UNAVAILABLE_BODY = renderProblem(502, UNAVAILABLE.message, UNAVAILABLE.code)
const TIMEOUT_HEADERS = ['content-type', PROBLEM_CONTENT_TYPE_UTF8, 'content-length', String(Buffer.byteLength(TIMEOUT_BODY))]
const UNAVAILABLE_HEADERS = ['content-type', PROBLEM_CONTENT_TYPE_UTF8, 'content-length', String(Buffer.byteLength(UNAVAILABLE_BODY))]
const TIMEOUT_CLOSE_HEADERS = [...TIMEOUT_HEADERS, 'connection', 'close']
const UNAVAILABLE_CLOSE_HEADERS = [...UNAVAILABLE_HEADERS, 'connection', 'close']

/**
 * Request headers meaningful only on the hop between client and gateway (RFC 9110
 * §7.6.1), those the gateway sets itself (X-Forwarded-*), and Host (undici writes the
 * upstream's). `te` is kept when it is exactly `trailers`.
 */
const REQUEST_DROPPED = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'host', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'expect'])
/** Response headers of the upstream hop, not for the client (Node frames the body itself). */
const RESPONSE_DROPPED = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'trailer', 'transfer-encoding', 'upgrade'])
/**
 * The lengths of the response header names the gateway may drop (RESPONSE_DROPPED and its
 * own rate-limit headers): a name of another length is passed on without being lowercased
 * and looked up. Most upstream headers (Date, Content-Type, ETag, Cache-Control...) are:
 * 570–580 ns against 770–800 for a 9-header response's names (decoded, sorted out; a loop,
 * this VM, Node 24, 2026-12-06).
 */
const MAY_DROP = new Uint8Array(64)
for (const name of [...RESPONSE_DROPPED, ...RATE_LIMIT_HEADER_NAMES]) MAY_DROP[name.length] = 1

/** The names a Connection header lists (beyond keep-alive/close), lowercased; usually none. */
function connectionNames (value: string): string[] | undefined {
  if (value === 'keep-alive' || value === 'close' || value === 'Keep-Alive' || value === 'Close') return undefined
  const names = []
  for (const part of value.split(',')) {
    const n = part.trim().toLowerCase()
    if (n !== '' && n !== 'keep-alive' && n !== 'close') names.push(n)
  }
  return names
}

/** What went wrong, for a span's error.type: the error's code (ECONNREFUSED, UND_ERR_SOCKET) or name. */
export function errorType (err: Error): string {
  const code = (err as { code?: unknown }).code
  return typeof code === 'string' ? code : err.name
}

function isTimeout (err: Error): boolean {
  return err instanceof errors.HeadersTimeoutError || err instanceof errors.BodyTimeoutError
}

const kHandler = Symbol('gateway.forward')
type Tracked = ServerResponse & { [kHandler]?: ForwardHandler }

/** The client stopped reading and has drained: let the upstream parser go on. */
function onClientDrain (this: Tracked): void {
  this[kHandler]?.clientDrained()
}

/** The client connection closed: if the response is not done, abort the upstream request. */
function onClientClose (this: Tracked): void {
  this[kHandler]?.clientClosed()
}

/** One forwarded request (undici's callback interface, which hands over raw headers). */
class ForwardHandler implements Waiting {
  /** UPSTREAM_TIMEOUT_MS (deadlines.ts): when this request expires, -1 once it cannot. */
  deadline = -1
  prevWaiting: Waiting | undefined = undefined
  nextWaiting: Waiting | undefined = undefined
  private abort: ((err?: Error) => void) | undefined = undefined
  private resume: (() => void) | undefined = undefined
  private expiredError: Error | undefined = undefined
  private inBody = false
  private done = false
  /** Whether the client's 'drain' is listened to: from the first write it could not take at once. */
  private drainHeard = false
  private readonly started = performance.now()

  constructor (
    private readonly forwarder: Forwarder,
    private readonly request: FastifyRequest,
    private readonly res: Tracked,
    private readonly span: UpstreamSpan | undefined
  ) {
    forwarder.deadlines.add(this, this.started)
    res[kHandler] = this
    res.on('close', onClientClose)
  }

  expired (): void {
    const err = this.inBody ? new errors.BodyTimeoutError() : new errors.HeadersTimeoutError()
    // Still waiting for a connection: fail when it comes rather than send the request late.
    if (this.abort === undefined) this.expiredError = err
    else this.abort(err)
  }

  clientDrained (): void {
    const resume = this.resume
    if (resume !== undefined) resume()
  }

  clientClosed (): void {
    if (!this.done && this.abort !== undefined) this.abort(new errors.RequestAbortedError())
  }

  /** A request-body chunk went upstream: the upload flows, the upstream is not idle. */
  onBodySent (): void {
    this.active()
  }

  /** The request is sent whole: the wait for the response headers starts now. */
  onRequestSent (): void {
    this.active()
  }

  onConnect (abort: (err?: Error) => void): void {
    this.abort = abort
    if (this.expiredError !== undefined) abort(this.expiredError)
  }

  onHeaders (status: number, raw: Buffer[], resume: () => void, statusText: string): boolean {
    // 1xx: informational; the client's own `Expect: 100-continue` Node has answered.
    if (status < 200) return true
    // RFC 9110 §15: three digits, 1xx to 5xx. Anything else is not an answer to pass on.
    if (status > 599) {
      this.abort!(new InvalidUpstreamStatusError(status))
      return false
    }
    this.inBody = true
    this.resume = resume
    this.active()
    const res = this.res
    const headers: string[] = []
    let dropped: string[] | undefined
    // Only a 10-byte name can be Connection: no other name is decoded twice.
    for (let i = 0; i < raw.length; i += 2) {
      if (raw[i]!.length === 10 && raw[i]!.toString('latin1').toLowerCase() === 'connection') dropped = connectionNames(raw[i + 1]!.toString('latin1'))
    }
    const noContent = status === 204
    // The limiter's rate-limit headers replace any of the same name from the upstream.
    const own = this.request.gwHeaders
    const settlement = this.request.gwSettle
    const costHeader = settlement === null ? undefined : settlement.costHeader
    let reported: string | undefined
    // Every name is looked at when a Connection header names some, or the response has no content.
    const all = dropped !== undefined || noContent
    const costLength = costHeader === undefined ? -1 : costHeader.length
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!.toString('latin1')
      const n = name.length
      if (all || n === costLength || (n < MAY_DROP.length && MAY_DROP[n] === 1)) {
        const lower = name.toLowerCase()
        if (RESPONSE_DROPPED.has(lower) || (dropped !== undefined && dropped.includes(lower))) continue
        if (noContent && (lower === 'content-type' || lower === 'content-length')) continue
        if (own !== null && RATE_LIMIT_HEADER_NAMES.has(lower)) continue
        if (lower === costHeader) {
          // The upstream's word to the gateway, never the client's: the first one counts.
          reported ??= raw[i + 1]!.toString('latin1')
          continue
        }
      }
      headers.push(name, raw[i + 1]!.toString('latin1'))
    }
    // Settled before the client sees the response: its next request finds the charge right.
    if (settlement !== null) settlement.answered(status, reported)
    if (own !== null) for (let i = 0; i < own.length; i++) headers.push(own[i]!)
    // Node would throw on a header value it refuses to send, but undici's parser refuses the
    // same characters first (checked: DEL in a value is a parse error, never a header here).
    res.writeHead(status, statusText === '' ? undefined : statusText, headers)
    return true
  }

  onData (chunk: Buffer): boolean {
    this.active()
    const res = this.res
    if (res.write(chunk)) return true
    // The client is behind: the upstream parser pauses until it has drained ('drain'
    // always comes after write() has returned).
    if (!this.drainHeard) {
      this.drainHeard = true
      res.on('drain', onClientDrain)
    }
    return false
  }

  onComplete (): void {
    this.finish()
    const res = this.res
    res.end()
    this.forwarder.opts.observer?.response(performance.now() - this.started, res.statusCode)
    if (this.span !== undefined) this.span.end(res.statusCode, undefined)
  }

  onError (err: Error): void {
    this.finish()
    const res = this.res
    const span = this.span
    // The client is gone (its own abort, or a closed connection): nobody to answer.
    if (res.destroyed || err instanceof errors.RequestAbortedError) {
      if (span !== undefined) span.end(res.headersSent ? res.statusCode : undefined, 'client_aborted')
      return
    }
    if (res.headersSent) {
      // The upstream died mid-body: end the client's response the same way.
      if (span !== undefined) span.end(res.statusCode, errorType(err))
      res.destroy()
      return
    }
    const timeout = isTimeout(err)
    if (span !== undefined) span.end(undefined, timeout ? 'timeout' : errorType(err))
    this.forwarder.failed(err, timeout, performance.now() - this.started)
    const settlement = this.request.gwSettle
    if (settlement !== null) settlement.failed(timeout ? 504 : 502)
    const req = this.request.raw
    if (req.complete) {
      res.writeHead(timeout ? 504 : 502, timeout ? TIMEOUT_HEADERS : UNAVAILABLE_HEADERS)
    } else {
      // The rest of the body will never be read for this request: Node closes the
      // connection once the answer is written (Connection: close).
      res.writeHead(timeout ? 504 : 502, timeout ? TIMEOUT_CLOSE_HEADERS : UNAVAILABLE_CLOSE_HEADERS)
    }
    res.end(timeout ? TIMEOUT_BODY : UNAVAILABLE_BODY)
  }

  /** Bytes moved either way: UPSTREAM_TIMEOUT_MS starts again from now. */
  private active (): void {
    this.forwarder.deadlines.refresh(this, performance.now())
  }

  private finish (): void {
    this.done = true
    this.forwarder.deadlines.remove(this)
    this.res[kHandler] = undefined
  }
}

export class Forwarder {
  readonly pool: Pool
  /** UPSTREAM_TIMEOUT_MS of every request in flight. */
  readonly deadlines: Deadlines
  private readonly origin: string
  /** UPSTREAM_URL's path, without a trailing slash: prefixed to every request path. */
  private readonly basePath: string
  private readonly failureLog: (err?: unknown, extra?: Record<string, unknown>) => void

  constructor (readonly opts: ForwardOptions) {
    const url = new URL(opts.upstreamUrl)
    this.origin = url.origin
    this.basePath = url.pathname.replace(/\/+$/, '')
    this.pool = new Pool(url.origin, {
      connections: opts.connections,
      pipelining: 1,
      connectTimeout: Math.min(opts.timeoutMs, MAX_CONNECT_TIMEOUT_MS),
      headersTimeout: 0,
      bodyTimeout: 0
    })
    this.failureLog = createThrottledLog(opts.log, 'warn', 'upstream request failed')
    this.deadlines = new Deadlines(opts.timeoutMs)
  }

  /** Forwards the request; the reply is the forwarder's from here on (hijacked). */
  forward (request: FastifyRequest, reply: FastifyReply): void {
    reply.hijack()
    const req = request.raw
    // The client left while the limiter decided (a store round trip, a leaky-bucket
    // wait): nobody to answer, nothing to send upstream.
    if (req.socket.destroyed) return
    const path = this.basePath + req.url!
    const headers = this.requestHeaders(request, req)
    const tracer = this.opts.tracer
    const span = tracer === undefined ? undefined : tracer.upstream(request, headers, req.method!, path)
    const handler = new ForwardHandler(this, request, reply.raw, span)
    const options: Dispatcher.DispatchOptions = {
      origin: this.origin,
      path,
      method: req.method as Dispatcher.HttpMethod,
      headers,
      body: hasBody(req) ? req : null
    }
    this.pool.dispatch(options, handler as unknown as Dispatcher.DispatchHandler)
  }

  /** A 502/504 answered: logged (throttled) and reported. */
  failed (err: Error, timeout: boolean, ms: number): void {
    this.failureLog(err, { code: (err as { code?: string }).code, timeout })
    this.opts.observer?.failure(ms, timeout ? 'timeout' : 'unavailable')
  }

  private requestHeaders (request: FastifyRequest, req: IncomingMessage): string[] {
    const raw = req.rawHeaders
    const parsed = req.headers
    const connection = parsed.connection
    const dropped = connection === undefined ? undefined : connectionNames(connection)
    const headers: string[] = []
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!
      const lower = name.toLowerCase()
      if (REQUEST_DROPPED.has(lower) || (dropped !== undefined && dropped.includes(lower))) continue
      headers.push(name, raw[i + 1]!)
    }
    // `TE: trailers`, the one TE value a proxy may pass on.
    if (parsed.te === 'trailers') headers.push('te', 'trailers')
    // A client gone before forwarding has no address left; its request goes nowhere anyway.
    /* c8 ignore next */
    const peer = req.socket.remoteAddress ?? ''
    const trusted = this.opts.isTrustedPeer(peer)
    const prior = parsed['x-forwarded-for']
    headers.push('x-forwarded-for', trusted && typeof prior === 'string' && prior !== '' ? `${prior}, ${peer}` : peer)
    const proto = parsed['x-forwarded-proto']
    headers.push('x-forwarded-proto', trusted && typeof proto === 'string' ? proto : request.protocol)
    const fwdHost = parsed['x-forwarded-host']
    const host = trusted && typeof fwdHost === 'string' ? fwdHost : parsed.host
    if (host !== undefined) headers.push('x-forwarded-host', host)
    return headers
  }

  /** After the server has closed: what is still in flight upstream is abandoned. */
  async close (): Promise<void> {
    this.deadlines.close()
    await this.pool.destroy()
  }
}

/** Whether a request has a body to stream (a length above 0, or chunked). */
function hasBody (req: IncomingMessage): boolean {
  const length = req.headers['content-length']
  return (length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined
}
