/**
 * Forwarding to the upstream with @fastify/http-proxy (reply-from over an undici pool).
 * Bodies stream both ways; hop-by-hop headers are dropped; X-Forwarded-* are set from
 * what the gateway itself saw (a chain from an untrusted peer is replaced, not extended).
 * One client request makes at most one upstream request: reply-from's retries are off.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import httpProxy from '@fastify/http-proxy'
import type { IncomingHttpHeaders } from 'node:http'
import { PROBLEM_CONTENT_TYPE, problem, UpstreamTimeoutError, UpstreamUnavailableError } from '../errors.js'
import { createThrottledLog } from '../log.js'
import { DeadlinePool } from './deadline.js'

export interface ProxyOptions {
  upstreamUrl: string
  timeoutMs: number
  connections: number
  /** Whether the direct peer is a trusted proxy (whose X-Forwarded-* we keep). */
  isTrustedPeer: (address: string) => boolean
  /** The upstream did not answer this request: refused/reset (502) or too slow (504). */
  onFailure?: (request: FastifyRequest, kind: 'unavailable' | 'timeout') => void
}

/** Methods proxied; anything else gets fastify's 404 without reaching the upstream. */
export const PROXIED_METHODS = ['DELETE', 'GET', 'HEAD', 'PATCH', 'POST', 'PUT', 'OPTIONS'] as const

/**
 * Request headers meaningful only on the hop between client and gateway (RFC 9110 §7.6.1).
 * `Connection` and the headers it names are already gone: reply-from strips them before
 * calling rewriteRequestHeaders (and undici drops Transfer-Encoding itself).
 */
const HOP_BY_HOP = ['keep-alive', 'proxy-connection', 'proxy-authorization', 'te', 'trailer', 'upgrade']
/** Response headers of the upstream hop, not for the client. */
const RESPONSE_HOP_BY_HOP = ['keep-alive', 'proxy-connection', 'proxy-authenticate', 'trailer', 'upgrade']

const TIMEOUT = new UpstreamTimeoutError()
const UNAVAILABLE = new UpstreamUnavailableError()
const TIMEOUT_BODY = JSON.stringify(problem(504, TIMEOUT.message, TIMEOUT.code))
const UNAVAILABLE_BODY = JSON.stringify(problem(502, UNAVAILABLE.message, UNAVAILABLE.code))

/** Deletes only what is there: most requests carry none of these, and a lookup is cheaper. */
function drop (headers: Record<string, unknown>, names: readonly string[]): void {
  for (let i = 0; i < names.length; i++) if (headers[names[i]!] !== undefined) delete headers[names[i]!]
}

/** Drops the response's Connection header and every header it names. */
function dropConnection (headers: Record<string, unknown>): void {
  const connection = headers.connection
  if (typeof connection !== 'string') return
  delete headers.connection
  // The usual case, without splitting a string.
  if (connection === 'keep-alive' || connection === 'close') return
  for (const name of connection.split(',')) {
    const n = name.trim().toLowerCase()
    if (n) delete headers[n]
  }
}

function isTimeout (error: { statusCode?: number, code?: string }): boolean {
  return error.statusCode === 504 || error.code === 'UND_ERR_HEADERS_TIMEOUT' || error.code === 'UND_ERR_BODY_TIMEOUT'
}

export async function registerProxy (app: FastifyInstance, opts: ProxyOptions): Promise<void> {
  const upstreamErrorLog = createThrottledLog(app.log, 'warn', 'upstream request failed')

  function rewriteRequestHeaders (request: FastifyRequest, headers: IncomingHttpHeaders): IncomingHttpHeaders {
    const raw = request.raw.headers
    drop(headers, HOP_BY_HOP)
    // Keep `TE: trailers`, the one TE value a proxy may pass on.
    if (raw.te === 'trailers') headers.te = 'trailers'
    // A client gone before forwarding has no address left; its request goes nowhere anyway.
    /* c8 ignore next */
    const peer = request.socket.remoteAddress ?? ''
    const trusted = opts.isTrustedPeer(peer)
    const prior = raw['x-forwarded-for']
    headers['x-forwarded-for'] = trusted && typeof prior === 'string' && prior !== '' ? `${prior}, ${peer}` : peer
    const proto = raw['x-forwarded-proto']
    headers['x-forwarded-proto'] = trusted && typeof proto === 'string' ? proto : request.protocol
    const fwdHost = raw['x-forwarded-host']
    const host = trusted && typeof fwdHost === 'string' ? fwdHost : raw.host
    if (host !== undefined) headers['x-forwarded-host'] = host
    else delete headers['x-forwarded-host']
    return headers
  }

  function rewriteHeaders (headers: Record<string, unknown>): Record<string, unknown> {
    dropConnection(headers)
    drop(headers, RESPONSE_HOP_BY_HOP)
    return headers
  }

  function onError (reply: FastifyReply, { error }: { error: Error & { statusCode?: number, code?: string, cause?: unknown } }): void {
    const timeout = isTimeout(error)
    upstreamErrorLog(error.cause ?? error, { code: error.code, timeout })
    opts.onFailure?.(reply.request, timeout ? 'timeout' : 'unavailable')
    reply
      .code(timeout ? 504 : 502)
      .header('content-type', PROBLEM_CONTENT_TYPE)
      .send(timeout ? TIMEOUT_BODY : UNAVAILABLE_BODY)
  }

  const pool = new DeadlinePool(new URL(opts.upstreamUrl).origin, opts.timeoutMs, {
    connections: opts.connections,
    pipelining: 1,
    connectTimeout: Math.min(opts.timeoutMs, 10_000)
  })
  // After the server has closed and its in-flight requests are done (or were cut at
  // SHUTDOWN_TIMEOUT_MS: what they still wait for upstream is abandoned). reply-from leaves
  // a pool it was handed alone.
  app.addHook('onClose', async () => { await pool.destroy() })

  await app.register(httpProxy, {
    upstream: opts.upstreamUrl,
    httpMethods: [...PROXIED_METHODS],
    websocket: true,
    disableRequestLogging: true,
    undici: pool,
    replyOptions: {
      // No retries at all: one client request, at most one upstream request.
      retryDelay: () => null,
      rewriteRequestHeaders,
      rewriteHeaders,
      onError: onError as never
    }
  } as never)
}
