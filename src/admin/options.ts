/** What the admin listener and its API are built from. */
import type { FastifyBaseLogger } from 'fastify'
import type { Config } from '../config/index.js'
import type { LimitsManager } from '../control/manager.js'
import type { SettingsSync } from '../control/sync.js'
import type { Metrics } from '../observe/metrics.js'
import type { TopOffenders } from '../observe/offenders.js'
import type { ClientAdmin, StoreStatus } from '../store/types.js'
import type { UpstreamProbe } from '../proxy/probe.js'
import type { Clock } from '../core/clock.js'
import type { ReloadResult } from '../control/rules-file.js'
import type { Registry } from 'prom-client'
import type { Offender } from '../observe/offenders.js'
import type { UsageTotal } from '../store/usage.js'
import type { RateLimitService } from '../rls/service.js'

export interface AdminState {
  /** Set at shutdown: readiness fails so load balancers stop sending traffic. */
  draining: boolean
}

/** One worker thread's part: requests it answered, connections it holds open now. */
export interface WorkerShare {
  worker: number
  requests: number
  connections: number
}

/** What every worker thread reports at once (WORKERS > 1), summed for the whole process. */
export interface WorkersReport {
  /** The workers' metrics and the main thread's, summed (no worker label). */
  registry: Registry
  offenders: Offender[]
  inFlight: number
  /** Each worker that answered, by its number. */
  workers: WorkerShare[]
}

/** The worker threads, as the main thread's admin listener sees them (WORKERS > 1). */
export interface WorkersView {
  ready (): boolean
  /** The offenders of the last `minutes`, at most `limit`, and everything else summed. */
  report (minutes: number, limit: number): Promise<WorkersReport>
  reloadRules (): void
  /** The usage ledger's heaviest clients over these days, from every worker (memory store). */
  topUsage (days: readonly string[], limit: number): Promise<UsageTotal[]>
}

export interface AdminOptions {
  logger: FastifyBaseLogger
  config: Config
  store: (ClientAdmin & StoreStatus) | undefined
  state: AdminState
  manager: LimitsManager
  sync: SettingsSync | undefined
  metrics: Metrics
  offenders: TopOffenders
  /** Undefined without UPSTREAM_URL (MODE=decision). */
  upstream: UpstreamProbe | undefined
  /** Today's date for the usage ledger's default range. */
  clock: Clock
  /** Reads RATE_LIMIT_RULES_FILE again (POST /admin/rules/reload, as SIGHUP). */
  reloadRules: () => ReloadResult
  /** WORKERS > 1: the worker threads this listener answers for. */
  workers?: WorkersView
  /** The rate limit service (RLS_PORT), whose descriptors /admin/rls/descriptor names. */
  rls?: RateLimitService
}
