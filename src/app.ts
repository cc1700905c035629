/**
 * Builds the gateway from a Config: the client-facing Fastify instance (limiter + proxy)
 * and the admin instance, with what watches and steers them (rules file, runtime
 * settings, metrics, violation logs, top offenders, alerts, adaptive limits). Nothing
 * here listens or touches the process; server.ts does.
 */
import { readFileSync, unwatchFile, watchFile } from 'node:fs'
import type { Duplex } from 'node:stream'
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import proxyAddr from 'proxy-addr'
import type { Clock } from './core/clock.js'
import { systemClock } from './core/clock.js'
import type { Config } from './config/index.js'
import { parseRules } from './config/rules.js'
import { BadRequestError, HeadersTooLargeError, InternalError, PROBLEM_CONTENT_TYPE, PROBLEM_CONTENT_TYPE_UTF8, problem, RequestTimeoutError, RouteNotFoundError, statusTitle } from './errors.js'
import { createIdentify } from './identity/identify.js'
import { limiterPlugin, type LimiterObserver } from './limiter/plugin.js'
import { registerProxy } from './proxy/index.js'
import { refusedAsMalformed } from './proxy/hygiene.js'
import { UpstreamProbe } from './proxy/probe.js'
import { MemoryStore } from './store/memory.js'
import { RedisStore } from './store/redis.js'
import { FailoverStore } from './store/failover.js'
import type { Store } from './store/types.js'
import { buildAdmin, type AdminState } from './admin/index.js'
import { LimitsManager } from './control/manager.js'
import { SettingsSync } from './control/sync.js'
import { AdaptiveLimits } from './control/adaptive.js'
import { Metrics } from './observe/metrics.js'
import { ViolationLog } from './observe/violations.js'
import { TopOffenders } from './observe/offenders.js'
import { Alerts } from './observe/alerts.js'

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
  readonly manager: LimitsManager
  readonly metrics: Metrics
  readonly offenders: TopOffenders
  readonly adaptive: AdaptiveLimits | undefined
  readonly alerts: Alerts | undefined
  /** With Redis: the fleet-wide settings sync. */
  readonly sync: SettingsSync | undefined
  /** Whether UPSTREAM_URL accepts connections (start-up warning, /readyz). */
  readonly upstream: UpstreamProbe
  /**
   * Reads RATE_LIMIT_RULES_FILE again and puts its rules in force; a bad file is logged
   * and the rules in force stay. Returns whether new rules were applied.
   */
  reloadRules (): boolean
  /** Closes the gateway (draining in-flight requests), the admin listener and the store; once. */
  close (): Promise<void>
}

const INTERNAL = new InternalError()
/** While draining, how often connections that have gone idle are closed. */
export const DRAIN_SWEEP_MS = 50
/** How often Node checks client connections against the header and request timeouts. */
export const CONNECTIONS_CHECK_MS = 1_000
/** What Node 20 adds to keepAliveTimeout before it closes an idle socket. */
const NODE20_KEEP_ALIVE_BUFFER_MS = 1_000

/**
 * The server's keep-alive settings for an idle timeout. Node keeps an idle socket open a
 * buffer past the advertised `Keep-Alive: timeout=`, so that a client reusing it right at
 * that limit is not cut off: 1 s fixed on Node 20, `keepAliveTimeoutBuffer` (settable) from
 * Node 24 on. The socket must close at `idleMs`: the advertised part is what is left.
 */
export function keepAliveTimeouts (idleMs: number, bufferSettable: boolean): { keepAliveTimeout: number, bufferMs: number } {
  const bufferMs = bufferSettable ? Math.min(NODE20_KEEP_ALIVE_BUFFER_MS, Math.floor(idleMs / 4)) : NODE20_KEEP_ALIVE_BUFFER_MS
  return { keepAliveTimeout: Math.max(1, idleMs - bufferMs), bufferMs }
}
/** pino's numeric level for `error`. */
const ERROR_LEVEL = 50

interface Stores { store: Store, redis: RedisStore | undefined }

/** A raw response for a request Node's parser refused or cut: no route, no reply object. */
function rawProblem (status: number, error: { message: string, code: string }): string {
  const body = JSON.stringify(problem(status, error.message, error.code))
  return `HTTP/1.1 ${status} ${statusTitle(status)}\r\nContent-Type: ${PROBLEM_CONTENT_TYPE_UTF8}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`
}
const REQUEST_TIMEOUT_RESPONSE = rawProblem(408, new RequestTimeoutError())
const HEADERS_TOO_LARGE_RESPONSE = rawProblem(431, new HeadersTooLargeError())
const MALFORMED_RESPONSE = rawProblem(400, new BadRequestError('the request is not valid HTTP/1.1'))

/**
 * Requests the HTTP parser refused or the request timeouts cut, answered like every other
 * gateway error (problem+json with a code) instead of fastify's own JSON shape.
 */
function clientErrorHandler (err: Error & { code?: string }, socket: Duplex): void {
  // Nobody left to answer (a reset, or the client has stopped reading): just close.
  if (socket.writable) {
    socket.write(err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? REQUEST_TIMEOUT_RESPONSE
      : (err.code === 'HPE_HEADER_OVERFLOW' ? HEADERS_TOO_LARGE_RESPONSE : MALFORMED_RESPONSE))
  }
  socket.destroy()
}

/** The store the Config names; for Redis, connected (or failing with what went wrong). */
async function createStore (config: Config, clock: Clock, log: FastifyBaseLogger): Promise<Stores> {
  const local = new MemoryStore({ maxKeys: config.memoryStoreMaxKeys, clock, bans: config.bans })
  if (config.store === 'memory') return { store: local, redis: undefined }
  // One decision mixing subjects (the global limit; on a Cluster, rules that may be keyed
  // by another identity source) needs all its keys in one slot. Fixed for the store's life.
  const singleSlot = config.globalLimit !== undefined || (config.redis.clusterNodes.length > 0 && config.rulesFile !== undefined)
  const primary = new RedisStore({ settings: config.redis, clock, bans: config.bans, singleSlot })
  try {
    await primary.connect()
  } catch (err) {
    await primary.close()
    await local.close()
    throw err
  }
  const store = new FailoverStore({ primary, local, failureMode: config.storeFailureMode, probeIntervalMs: config.redis.probeIntervalMs, log: log.child({ component: 'store' }) })
  return { store, redis: primary }
}

export async function buildApp (config: Config, deps: AppDeps): Promise<App> {
  const clock = deps.clock ?? systemClock
  const log = deps.logger
  const isTrusted = proxyAddr.compile([...config.trustProxy])
  const state: AdminState = { draining: false }

  const gatewayLog = log.child({ listener: 'gateway' })
  // One logger for every request, from error up: below that, fastify and http-proxy
  // (reply-from) write a line per failed request (a client aborting, the upstream down),
  // which an attacker turns into a log flood; the gateway's own warnings are throttled or
  // aggregated. Shared rather than a child per request (with its request id): a pino
  // child per request cost measurable CPU on the hot path, for lines that almost never come.
  const requestLog = gatewayLog.child({}) as FastifyBaseLogger & { levelVal: number }
  if (requestLog.levelVal < ERROR_LEVEL) requestLog.level = 'error'
  const gateway = Fastify({
    loggerInstance: gatewayLog,
    logController: new LogController({ disableRequestLogging: true }),
    childLoggerFactory: () => requestLog,
    // Slow clients: headers within REQUEST_HEADERS_TIMEOUT_MS (slowloris), the whole
    // request within REQUEST_TIMEOUT_MS (slow bodies), checked every second; a silent
    // connection closed after CLIENT_IDLE_TIMEOUT_MS.
    http: { headersTimeout: config.headersTimeoutMs, connectionsCheckingInterval: CONNECTIONS_CHECK_MS },
    requestTimeout: config.requestTimeoutMs,
    connectionTimeout: config.clientIdleTimeoutMs,
    // proxy-addr picks the right-most untrusted X-Forwarded-For hop; no list, no trust.
    trustProxy: config.trustProxy.length > 0 ? (address: string, hop: number) => isTrusted(address, hop) : false,
    return503OnClosing: true,
    clientErrorHandler
  })

  // An idle keep-alive connection closes CLIENT_IDLE_TIMEOUT_MS after its last response.
  const server = gateway.server as unknown as { keepAliveTimeout: number, keepAliveTimeoutBuffer?: number }
  const idle = keepAliveTimeouts(config.clientIdleTimeoutMs, 'keepAliveTimeoutBuffer' in server)
  server.keepAliveTimeout = idle.keepAliveTimeout
  server.keepAliveTimeoutBuffer = idle.bufferMs

  // Anything unexpected: a problem+json body that gives nothing away.
  gateway.setErrorHandler((err: Error & { statusCode?: number, code?: string }, request, reply) => {
    const status = err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500
    if (status === 500) request.log.error({ err }, 'request failed')
    reply.code(status).header('content-type', PROBLEM_CONTENT_TYPE)
      .send(JSON.stringify(status === 500 ? problem(500, INTERNAL.message, INTERNAL.code) : problem(status, err.message, err.code)))
  })

  const manager = new LimitsManager(config)
  const stores = config.rateLimitEnabled
    ? (deps.store ? { store: deps.store, redis: undefined } : await createStore(config, clock, log))
    : undefined
  const store = stores?.store
  const metrics = new Metrics({ store, factors: () => ({ emergency: manager.runtimeSettings.factor ?? 1, adaptive: manager.adaptive }) })
  const violations = new ViolationLog(log.child({ component: 'violations' }), config.violationLogIntervalMs)
  const offenders = new TopOffenders(clock)
  const alerts = config.alerts && new Alerts(config.alerts, log.child({ component: 'alerts' }), clock)
  const adaptive = config.adaptive && config.rateLimitEnabled
    ? new AdaptiveLimits(config.adaptive, factor => manager.setAdaptiveFactor(factor), log.child({ component: 'adaptive' }))
    : undefined
  const sync = stores?.redis && new SettingsSync({ store: stores.redis, manager, prefix: config.redis.keyPrefix, connectTimeoutMs: config.redis.connectTimeoutMs, log: log.child({ component: 'settings' }) })
  if (sync) {
    // Redis answered a moment ago; if it fails now, the version check catches up later.
    await sync.start().catch((err: unknown) => log.warn({ err }, 'settings sync: could not subscribe yet; checking the stored version periodically'))
  }

  const rulesLog = log.child({ component: 'rules' })
  let rulesText = config.rulesText
  if (config.rulesFile !== undefined) rulesLog.info({ file: config.rulesFile, rules: config.rules.length }, 'route rules loaded')

  function reloadRules (): boolean {
    const file = config.rulesFile
    if (file === undefined) {
      rulesLog.warn('no RATE_LIMIT_RULES_FILE to reload')
      return false
    }
    try {
      const text = readFileSync(file, 'utf8')
      if (text === rulesText) return false
      const rules = parseRules(text, manager.rulesContext())
      manager.setFileRules(rules)
      rulesText = text
      metrics.rulesReloads.applied.inc()
      rulesLog.info({ file, rules: rules.length }, 'route rules reloaded')
      return true
    } catch (err) {
      metrics.rulesReloads.rejected.inc()
      rulesLog.error({ file, reason: (err as Error).message }, 'route rules file rejected; the rules in force stay')
      return false
    }
  }

  if (store !== undefined) {
    const observer: LimiterObserver = {
      outcome: outcome => metrics.requests[outcome].inc(),
      decided: seconds => metrics.decisionSeconds.observe(seconds),
      refused (client, policy, dryRun) {
        violations.record(client, policy, dryRun)
        if (dryRun) return
        offenders.record(client)
        alerts?.record(client, policy)
      }
    }
    await gateway.register(limiterPlugin, { store, identify: createIdentify(config), limits: manager.holder, headers: config.headers, observer })
  } else {
    // Without the limiter, hygiene is a hook of its own (with it, the limiter's first step).
    gateway.decorateRequest('gwHeaders', null)
    gateway.addHook('onRequest', function wellFormed (request, reply, done) {
      if (!refusedAsMalformed(request, reply)) done()
    })
  }

  // Methods the gateway never proxies (TRACE, CONNECT, ...): after the limiter has decided.
  const notProxied = JSON.stringify(problem(404, new RouteNotFoundError('the gateway does not forward this method').message, 'GW_NOT_FOUND'))
  gateway.setNotFoundHandler(function notFound (request, reply) {
    reply.code(404).header('content-type', PROBLEM_CONTENT_TYPE).send(notProxied)
  })

  await registerProxy(gateway, {
    upstreamUrl: config.upstreamUrl,
    timeoutMs: config.upstreamTimeoutMs,
    connections: config.upstreamConnections,
    isTrustedPeer: (address) => isTrusted(address, 0),
    // Upstream latency and status classes, for proxied requests (not the limiter's answers).
    observer: {
      response (ms, status) {
        metrics.upstreamSeconds.observe(ms / 1000)
        metrics.upstreamStatus(status)
        adaptive?.observe(ms, status >= 500)
      },
      failure (ms, kind) {
        metrics.upstreamSeconds.observe(ms / 1000)
        metrics.upstreamFailures[kind].inc()
        adaptive?.observe(ms, true)
      }
    }
  })

  const upstreamProbe = new UpstreamProbe(config.upstreamUrl)
  const admin = buildAdmin({
    upstream: upstreamProbe,
    logger: log,
    config,
    store,
    state,
    manager,
    sync,
    metrics,
    offenders
  })

  // Stat polling rather than inotify: it follows editors that replace the file, symlink
  // swaps (Kubernetes ConfigMaps) and bind mounts alike, for one stat per interval.
  const watchedFile = config.rateLimitEnabled && config.rulesPollMs > 0 ? config.rulesFile : undefined
  if (watchedFile !== undefined) {
    // Called when the file's stat changes; reloadRules() compares the content itself.
    watchFile(watchedFile, { interval: config.rulesPollMs, persistent: false }, () => { reloadRules() })
  }

  let closing: Promise<void> | undefined
  return {
    config,
    gateway,
    admin,
    store,
    state,
    manager,
    metrics,
    offenders,
    adaptive,
    alerts,
    sync,
    upstream: upstreamProbe,
    reloadRules,
    close () {
      closing ??= (async () => {
        if (watchedFile !== undefined) unwatchFile(watchedFile)
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
        adaptive?.close()
        alerts?.close()
        violations.close()
        await sync?.close()
        await store?.close()
      })()
      return closing
    }
  }
}
