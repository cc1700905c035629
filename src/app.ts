/**
 * Builds the gateway from a Config, wiring what the folders below provide: the client
 * listener (proxy/listener.ts) with the limiter as its onRequest hook and the forwarder as
 * its routes, the admin listener, and what watches and steers them (rules file, runtime
 * settings, observability, adaptive limits). Nothing here listens or touches the process;
 * server.ts does.
 */
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import proxyAddr from 'proxy-addr'
import { systemClock, type Clock } from './core/clock.js'
import type { Config } from './config/index.js'
import { limiterPlugin } from './limiter/plugin.js'
import { inlineOptions, limiterOptions } from './limiter/options.js'
import { buildDecisionListener } from './decision/index.js'
import { registerProxy } from './proxy/index.js'
import { addHygieneHook } from './proxy/hygiene.js'
import { createGatewayListener, drain } from './proxy/listener.js'
import { UpstreamProbe } from './proxy/probe.js'
import { createStore } from './store/create.js'
import type { Store } from './store/types.js'
import { buildAdmin, type AdminState, type WorkersView } from './admin/index.js'
import { loadKeysState } from './admin/keys.js'
import { LimitsManager } from './control/manager.js'
import { RulesFile, type ReloadResult } from './control/rules-file.js'
import { startSync, type SettingsSync } from './control/sync.js'
import type { ThreadShare } from './store/shared/tables.js'
import { AdaptiveLimits } from './control/adaptive.js'
import { Observability, type Alerts, type Metrics, type TopOffenders } from './observe/index.js'
import type { RlsListener } from './rls/index.js'

export interface AppDeps {
  logger: FastifyBaseLogger
  clock?: Clock
  /** A store to use instead of the one the Config names (tests). */
  store?: Store
  /** STORE=redis: the scripts' now instead of Redis TIME (tests); undefined: TIME. */
  redisClock?: Clock
  /** WORKERS > 1: the memory tables and the settings every thread of the process shares. */
  threads?: ThreadShare & { workers?: WorkersView }
}

export interface App {
  readonly config: Config
  /** The client listener (PORT): with MODE=decision, built but never listening. */
  readonly gateway: FastifyInstance
  /** The decision listener (DECISION_PORT), if on. */
  readonly decision: FastifyInstance | undefined
  /** Envoy's rate limit service (RLS_PORT), if on: built, listening once server.ts says. */
  readonly rls: RlsListener | undefined
  /** The client-facing listeners: the gateway's, and the decision listener if on (draining, shutdown). */
  readonly listeners: readonly FastifyInstance[]
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
  /** Whether UPSTREAM_URL accepts connections (start-up warning, /readyz); undefined without one. */
  readonly upstream: UpstreamProbe | undefined
  /**
   * Reads RATE_LIMIT_RULES_FILE again and puts its rules in force; a bad file is logged
   * and the rules in force stay. Says what it did.
   */
  reloadRules (): ReloadResult
  /** Closes the gateway (draining in-flight requests), the admin listener and the store; once. */
  close (): Promise<void>
}

export async function buildApp (config: Config, deps: AppDeps): Promise<App> {
  const clock = deps.clock ?? systemClock
  const log = deps.logger
  const isTrusted = proxyAddr.compile([...config.trustProxy])
  const state: AdminState = { draining: false }
  const gateway = createGatewayListener(config, log, isTrusted)

  const manager = new LimitsManager(config)
  if (config.apiKeysStateFile !== undefined) loadKeysState(config.apiKeysStateFile, manager)
  const stores = config.rateLimitEnabled
    ? (deps.store ? { store: deps.store, redis: undefined } : await createStore(config, clock, log, deps.redisClock, deps.threads?.tables))
    : undefined
  const store = stores?.store
  // Tracing's SDK is loaded only when tracing is on (an OTLP endpoint is set).
  const tracing = config.tracing === undefined ? undefined : new (await import('./observe/tracing.js')).Tracing(config.tracing, config.upstreamUrl, log.child({ component: 'tracing' }))
  if (tracing !== undefined) log.info({ url: config.tracing!.url, sampler: config.tracing!.sampler }, 'tracing on: spans exported over OTLP/HTTP')
  // A worker thread's process metrics are the main thread's (it sums the workers' with its own).
  const observe = new Observability({ config, log, clock, store, trace: tracing, processMetrics: deps.threads === undefined || deps.threads.workers !== undefined, factors: () => ({ emergency: manager.runtimeSettings.factor ?? 1, adaptive: manager.adaptive }) })
  const { metrics } = observe
  const adaptive = config.adaptive && config.rateLimitEnabled
    ? new AdaptiveLimits(config.adaptive, factor => manager.setAdaptiveFactor(factor), log.child({ component: 'adaptive' }))
    : undefined
  const sync = await startSync(stores?.redis, config, manager, log.child({ component: 'settings' }), deps.threads?.settings)
  const rules = new RulesFile({ config, manager, counted: result => metrics.rulesReloads[result].inc(), log: log.child({ component: 'rules' }) })

  // The limiter as the inline path and the decision listener both run it: one code path.
  // JWT_*: jose only when a key is set.
  const tokens = config.jwt === undefined ? undefined : (await import('./identity/jwt.js')).createTokenVerifier(config.jwt, metrics.registry, clock)
  const limiter = store && limiterOptions(config, store, manager.holder, observe.limiter, clock, tokens, manager.keys)
  if (config.mode === 'proxy') {
    // The request's span starts before anything else runs on it.
    if (tracing !== undefined) await gateway.register(tracing.plugin)
    if (limiter !== undefined) await gateway.register(limiterPlugin, inlineOptions(config, limiter, store!, gateway.log))
    else addHygieneHook(gateway)
    await registerProxy(gateway, {
      upstreamUrl: config.upstreamUrl!,
      timeoutMs: config.upstreamTimeoutMs,
      connections: config.upstreamConnections,
      isTrustedPeer: (address) => isTrusted(address, 0),
      observer: observe.upstream(adaptive && ((ms, bad) => adaptive.observe(ms, bad))),
      tracer: tracing
    })
  }
  const decision = config.decision === undefined || limiter === undefined
    ? undefined
    : await buildDecisionListener({ config, log, isTrusted, limiter, denyStatus: config.decision.denyStatus, tracing: tracing?.plugin })
  // The rate limit service's gRPC stack (~350 ms to load) only when RLS_PORT is set.
  const rls = config.rls === undefined || store === undefined ? undefined : new (await import('./rls/index.js')).RlsListener({
      config,
      store,
      log: log.child({ listener: 'rls' }),
      registry: metrics.registry,
      // Over-limit descriptors in the violation log and the top offenders, as refused clients.
      refused: (subject, policy, dryRun) => {
        observe.violations.record(subject, policy, dryRun)
        if (!dryRun) observe.offenders.record(subject)
      }
    })
  const upstream = config.upstreamUrl === undefined ? undefined : new UpstreamProbe(config.upstreamUrl)
  const admin = buildAdmin({ upstream, logger: log, config, store, state, manager, sync, metrics, offenders: observe.offenders, clock, reloadRules, workers: deps.threads?.workers, rls: rls?.service })

  /** The rules file and RLS_CONFIG read again (SIGHUP, the admin API); says what the rules file did. */
  function reloadRules (): ReloadResult {
    rls?.reload()
    return rules.reload()
  }
  const listeners = decision === undefined ? [gateway] : [gateway, decision]
  let closing: Promise<void> | undefined
  return {
    config,
    gateway,
    decision,
    rls,
    listeners,
    admin,
    store,
    state,
    manager,
    metrics,
    offenders: observe.offenders,
    adaptive,
    alerts: observe.alerts,
    sync,
    upstream,
    reloadRules,
    close () {
      closing ??= (async () => {
        rules.close()
        state.draining = true
        await Promise.all([drain(listeners), rls?.close(config.shutdownTimeoutMs)])
        await admin.close()
        adaptive?.close()
        observe.close()
        // The spans of the requests drained above are exported before the process ends.
        await tracing?.close()
        await sync?.close()
        await store?.close()
      })()
      return closing
    }
  }
}
