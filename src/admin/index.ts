/**
 * The admin listener: a separate Fastify instance on ADMIN_HOST:ADMIN_PORT, never the
 * client port. Health and readiness for orchestrators, open to all; with ADMIN_TOKEN, the
 * dashboard page and the API behind `Authorization: Bearer` (api.ts).
 */
import Fastify, { LogController, type FastifyInstance } from 'fastify'
import { AdminBodyTooLargeError, AdminMediaTypeError, InvalidChangeError, renderProblem, sendProblem } from '../errors.js'
import { DASHBOARD_HTML } from './dashboard.js'
import { adminApi } from './api.js'
import type { AdminOptions } from './options.js'

export type { AdminOptions, AdminState, WorkersView } from './options.js'

/** The admin API's bodies: JSON objects of a few KiB; a larger one is refused (413). */
export const ADMIN_BODY_LIMIT = 1024 * 1024

/** Fastify's body-parsing errors as the admin API answers them: the registry's. */
const FASTIFY_ERRORS: Record<string, (err: Error) => Error & { statusCode?: number, code: string }> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: () => new AdminMediaTypeError(),
  FST_ERR_CTP_INVALID_JSON_BODY: () => new InvalidChangeError('the body is not valid JSON'),
  FST_ERR_CTP_EMPTY_JSON_BODY: () => new InvalidChangeError('the body is empty: send a JSON object'),
  FST_ERR_CTP_BODY_TOO_LARGE: () => new AdminBodyTooLargeError(ADMIN_BODY_LIMIT)
}

export function buildAdmin (opts: AdminOptions): FastifyInstance {
  const { config } = opts
  const log = opts.logger.child({ listener: 'admin' })
  const admin = Fastify({
    loggerInstance: log,
    bodyLimit: ADMIN_BODY_LIMIT,
    logController: new LogController({ disableRequestLogging: true }),
    // An unknown field is an error, not silently dropped (query strings are still coerced).
    ajv: { customOptions: { removeAdditional: false } }
  })

  // Only JSON bodies: JSON sent as text/plain is a 415 saying so, not "body must be object".
  admin.removeContentTypeParser('text/plain')

  admin.setErrorHandler((err: Error & { statusCode?: number, code?: string, validation?: unknown }, _request, reply) => {
    // Every error raised here carries its status (the registry's, fastify's validation and
    // parsing); one without is a bug: logged, answered without internals.
    /* c8 ignore start -- only a bug reaches this: no test can provoke one */
    if (err.statusCode === undefined) {
      log.error({ err }, 'admin request failed')
      sendProblem(reply, 500, renderProblem(500, 'Internal error', 'GW_INTERNAL'))
      return
    }
    /* c8 ignore stop */
    // Fastify's own (validation, body parsing) in the gateway's words and codes.
    const own = FASTIFY_ERRORS[String(err.code)]?.(err) ?? err
    const code = own.code?.startsWith('GW_') === true ? own.code : 'GW_ADMIN_INVALID'
    sendProblem(reply, own.statusCode!, renderProblem(own.statusCode!, own.message, code))
  })

  // An unknown path (or, without ADMIN_TOKEN, the API that is off) answers like any error.
  admin.setNotFoundHandler((request, reply) => {
    const detail = config.adminToken === undefined && request.url !== '/healthz' && request.url !== '/readyz'
      ? `no such admin endpoint: ${request.method} ${request.url.split('?', 1)[0]!.slice(0, 200)} (the admin API, /metrics and /dashboard need ADMIN_TOKEN)`
      : `no such admin endpoint: ${request.method} ${request.url.split('?', 1)[0]!.slice(0, 200)}`
    sendProblem(reply, 404, renderProblem(404, detail, 'GW_ADMIN_NOT_FOUND'))
  })

  admin.get('/healthz', async () => ({ status: 'ok' }))

  admin.get('/readyz', async (_request, reply) => {
    const storeReady = opts.store?.ready() ?? true
    // WORKERS > 1: ready when every worker is up and listening.
    const ready = storeReady && !opts.state.draining && (opts.workers?.ready() ?? true)
    reply.code(ready ? 200 : 503)
    return {
      status: ready ? 'ready' : (opts.state.draining ? 'draining' : 'not-ready'),
      rateLimiting: config.rateLimitEnabled,
      store: opts.store ? { kind: opts.store.kind, mode: opts.store.mode(), ready: storeReady } : null,
      // Shown, not judged: requests get 502 while it is down, and the gateway itself (its
      // limits, its answers) is ready; an orchestrator restarting it would not help.
      upstream: opts.upstream === undefined ? null : await opts.upstream.check()
    }
  })

  const token = config.adminToken
  if (token === undefined) {
    log.warn('ADMIN_TOKEN is not set: the admin API, /metrics and /dashboard are off')
    return admin
  }

  // The page is static and holds no data: it asks for the token and calls the API below.
  admin.get('/dashboard', async (_request, reply) => {
    reply.header('content-type', 'text/html; charset=utf-8')
      .header('content-security-policy', "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'")
      .header('cache-control', 'no-store')
    return DASHBOARD_HTML
  })

  admin.register(adminApi(opts, log, token))

  return admin
}
