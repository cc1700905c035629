/**
 * The decision listener (DECISION_PORT): the limiter as a service for the proxies people
 * already run (nginx `auth_request`, Caddy `forward_auth`, Traefik ForwardAuth, Envoy
 * `ext_authz`). Each request to it asks "may this request go?" about an original request
 * the asking proxy describes with the conventional headers:
 *
 * - the client: X-Forwarded-For (or X-Real-IP), believed only when the asking proxy is in
 *   TRUST_PROXY, else the asking peer is the client, exactly as inline;
 * - the method: X-Forwarded-Method or X-Original-Method (else the request's own, as Envoy
 *   sends it);
 * - the path: X-Forwarded-Uri or X-Original-URI (else the request's own);
 * - the original request's own headers (API key, user id) as they are.
 *
 * The original method and path are put on the request before the limiter's hook, which
 * then runs exactly as inline: hygiene, identify, allowlist and bans, rules, one store
 * call. Admitted: 200 with the rate-limit headers, no body. Refused: DECISION_DENY_STATUS
 * (429 by default) with Retry-After, the headers and the problem body; a ban stays 403.
 * The listener never sees the original response: in-flight limits are not taken and
 * charges are not settled here (they apply inline only).
 */
import type { FastifyBaseLogger, FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import type { Config } from '../config/index.js'
import { BadRequestError, renderProblem, sendProblem } from '../errors.js'
import { limiterPlugin, type LimiterOptions } from '../limiter/plugin.js'
import { PROXIED_METHODS } from '../proxy/index.js'
import { createGatewayListener } from '../proxy/listener.js'

export interface DecisionOptions {
  config: Config
  log: FastifyBaseLogger
  isTrusted: (address: string, hop: number) => boolean
  /** The limiter, as the inline path has it (its store, limits, observer). */
  limiter: Omit<LimiterOptions, 'denyStatus' | 'afterResponse' | 'quota'>
  denyStatus: number
  /** Tracing's plugin (a server span per question, about the original request), if on. */
  tracing?: FastifyPluginAsync
}

const METHOD_RE = /^[A-Za-z]{1,20}$/
const BAD_URI = renderProblem(400, new BadRequestError('X-Forwarded-Uri / X-Original-URI must be a path starting with /').message, 'GW_BAD_REQUEST')
const BAD_METHOD = renderProblem(400, new BadRequestError('X-Forwarded-Method / X-Original-Method must be an HTTP method').message, 'GW_BAD_REQUEST')
const NO_HEADERS: string[] = []

function one (value: string | string[] | undefined): string | undefined {
  return typeof value === 'string' ? value : undefined
}

/** Puts the original request's method and path (and X-Real-IP as X-Forwarded-For) on the asking request. */
function describeOriginal (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
  const raw = request.raw
  const headers = raw.headers
  const uri = one(headers['x-forwarded-uri']) ?? one(headers['x-original-uri'])
  if (uri !== undefined) {
    if (uri[0] !== '/') {
      sendProblem(reply, 400, BAD_URI)
      return
    }
    raw.url = uri
  }
  const method = one(headers['x-forwarded-method']) ?? one(headers['x-original-method'])
  if (method !== undefined) {
    if (!METHOD_RE.test(method)) {
      sendProblem(reply, 400, BAD_METHOD)
      return
    }
    raw.method = method.toUpperCase()
  }
  // nginx's usual header; believed like X-Forwarded-For, only from a TRUST_PROXY peer.
  if (headers['x-forwarded-for'] === undefined) {
    const real = one(headers['x-real-ip'])
    if (real !== undefined) headers['x-forwarded-for'] = real
  }
  done()
}

/** Admitted: 200 with the limiter's rate-limit headers, nothing else. */
function admitted (request: FastifyRequest, reply: FastifyReply): void {
  reply.hijack()
  reply.raw.writeHead(200, request.gwHeaders ?? NO_HEADERS)
  reply.raw.end()
}

/**
 * What the decision listener leaves to the inline gateway beside it (MODE=proxy with a
 * DECISION_PORT): named once at start, since questions through it get none of them.
 * (MODE=decision refuses them at start instead: config.)
 */
export function inlineOnlySettings (config: Pick<Config, 'concurrency' | 'rules'>): string[] {
  const out: string[] = []
  if (config.concurrency.perClient !== undefined) out.push('CONCURRENCY_LIMIT')
  if (config.concurrency.global !== undefined) out.push('GLOBAL_CONCURRENCY_LIMIT')
  for (const r of config.rules) {
    const keys = [r.concurrency !== undefined && 'concurrency', r.count !== undefined && 'count', r.refund !== undefined && 'refund', r.costHeader !== undefined && 'costHeader'].filter(k => k !== false)
    if (keys.length > 0) out.push(`rule "${r.name}": ${keys.join(', ')}`)
  }
  return out
}

export async function buildDecisionListener (opts: DecisionOptions): Promise<FastifyInstance> {
  const app = createGatewayListener(opts.config, opts.log, opts.isTrusted, 'decision')
  const inline = inlineOnlySettings(opts.config)
  if (inline.length > 0) opts.log.warn({ settings: inline }, 'the decision listener never sees a response: in-flight limits and counting by the response apply to inline requests only; questions through DECISION_PORT are charged up front and take no slot')
  app.addHook('onRequest', describeOriginal)
  if (opts.tracing !== undefined) await app.register(opts.tracing)
  await app.register(limiterPlugin, { ...opts.limiter, denyStatus: opts.denyStatus, afterResponse: false })
  // A question has no body worth reading (Envoy may send the original's): never parsed.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', function ignore (_request, _payload, done) { done(null) })
  app.route({ method: [...PROXIED_METHODS], url: '/', handler: admitted })
  app.route({ method: [...PROXIED_METHODS], url: '/*', handler: admitted })
  return app
}
