/**
 * Builds the gateway from a Config: the client-facing Fastify instance (limiter + proxy)
 * and the admin instance. Nothing here listens or touches the process; server.ts does.
 */
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import proxyAddr from 'proxy-addr'
import type { Clock } from './clock.js'
import { systemClock } from './clock.js'
import type { Config } from './config/index.js'
import { InternalError, PROBLEM_CONTENT_TYPE, problem } from './errors.js'
import { createIdentify } from './identity/identify.js'
import { limiterPlugin } from './limiter/plugin.js'
import { createPolicySelector } from './limiter/policy.js'
import { registerProxy } from './proxy/index.js'
import { MemoryStore } from './store/memory.js'
import { RedisStore } from './store/redis.js'
import { FailoverStore } from './store/failover.js'
import type { Store } from './store/types.js'
import { buildAdmin, type AdminState } from './admin/index.js'

export interface AppDeps {
  logger: FastifyBaseLogger
  clock?: Clock
  /** A store to use instead of the one the Config names (tests). */
  store?: Store
}

export interface App {
  readonly config: Config
  readonly gateway: FastifyInstance
  readonly admin: FastifyInstance
  /** Undefined when RATE_LIMIT_ENABLED=false. */
  readonly store: Store | undefined
  readonly state: AdminState
  /** Closes the gateway (draining in-flight requests), the admin listener and the store. */
  close (): Promise<void>
}

const INTERNAL = new InternalError()
/** While draining, how often connections that have gone idle are closed. */
export const DRAIN_SWEEP_MS = 50

/** The store the Config names; for Redis, connected (or failing with what went wrong). */
async function createStore (config: Config, clock: Clock, log: FastifyBaseLogger): Promise<Store> {
  const local = new MemoryStore({ maxKeys: config.memoryStoreMaxKeys, clock })
  if (config.store === 'memory') return local
  const primary = new RedisStore({ settings: config.redis, clock })
  try {
    await primary.connect()
  } catch (err) {
    await primary.close()
    await local.close()
    throw err
  }
  return new FailoverStore({ primary, local, failureMode: config.storeFailureMode, probeIntervalMs: config.redis.probeIntervalMs, log: log.child({ component: 'store' }) })
}

export async function buildApp (config: Config, deps: AppDeps): Promise<App> {
  const clock = deps.clock ?? systemClock
  const isTrusted = proxyAddr.compile([...config.trustProxy])
  const state: AdminState = { draining: false }

  const gateway = Fastify({
    loggerInstance: deps.logger.child({ listener: 'gateway' }),
    logController: new LogController({ disableRequestLogging: true }),
    // proxy-addr picks the right-most untrusted X-Forwarded-For hop; no list, no trust.
    trustProxy: config.trustProxy.length > 0 ? (address: string, hop: number) => isTrusted(address, hop) : false,
    return503OnClosing: true
  })

  // Anything unexpected: a problem+json body that gives nothing away.
  gateway.setErrorHandler((err: Error & { statusCode?: number, code?: string }, request, reply) => {
    const status = err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500
    if (status === 500) request.log.error({ err }, 'request failed')
    reply.code(status).header('content-type', PROBLEM_CONTENT_TYPE)
      .send(JSON.stringify(status === 500 ? problem(500, INTERNAL.message, INTERNAL.code) : problem(status, err.message, err.code)))
  })

  let store: Store | undefined
  if (config.rateLimitEnabled) {
    store = deps.store ?? await createStore(config, clock, deps.logger)
    await gateway.register(limiterPlugin, {
      store,
      identify: createIdentify(config),
      policiesFor: createPolicySelector(config),
      headers: config.headers,
      dryRun: config.dryRun
    })
  }

  await registerProxy(gateway, {
    upstreamUrl: config.upstreamUrl,
    timeoutMs: config.upstreamTimeoutMs,
    connections: config.upstreamConnections,
    isTrustedPeer: (address) => isTrusted(address, 0)
  })

  const admin = buildAdmin({ logger: deps.logger, store, state, rateLimitEnabled: config.rateLimitEnabled })

  return {
    config,
    gateway,
    admin,
    store,
    state,
    async close () {
      state.draining = true
      // server.close() closes the connections idle at that moment only; a keep-alive
      // connection whose in-flight request finishes later would hold the drain open.
      const sweep = setInterval(() => gateway.server.closeIdleConnections(), DRAIN_SWEEP_MS)
      try {
        await gateway.close()
      } finally {
        clearInterval(sweep)
      }
      await admin.close()
      await store?.close()
    }
  }
}
