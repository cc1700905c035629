/**
 * The admin listener: a separate Fastify instance on ADMIN_HOST:ADMIN_PORT, never the
 * client port. Health (the process is up) and readiness (it can take decisions and is
 * not draining) for orchestrators.
 */
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import type { Store } from '../store/types.js'

export interface AdminState {
  /** Set at shutdown: readiness fails so load balancers stop sending traffic. */
  draining: boolean
}

export interface AdminOptions {
  logger: FastifyBaseLogger
  store: Store | undefined
  state: AdminState
  rateLimitEnabled: boolean
}

export function buildAdmin (opts: AdminOptions): FastifyInstance {
  const admin = Fastify({ loggerInstance: opts.logger.child({ listener: 'admin' }), logController: new LogController({ disableRequestLogging: true }) })

  admin.get('/healthz', async () => ({ status: 'ok' }))

  admin.get('/readyz', async (_request, reply) => {
    const storeReady = opts.store?.ready() ?? true
    const ready = storeReady && !opts.state.draining
    reply.code(ready ? 200 : 503)
    return {
      status: ready ? 'ready' : (opts.state.draining ? 'draining' : 'not-ready'),
      rateLimiting: opts.rateLimitEnabled,
      store: opts.store ? { kind: opts.store.kind, mode: opts.store.mode(), ready: storeReady } : null
    }
  })

  return admin
}
