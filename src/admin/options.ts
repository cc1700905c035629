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

export interface AdminState {
  /** Set at shutdown: readiness fails so load balancers stop sending traffic. */
  draining: boolean
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
}
