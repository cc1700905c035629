/** The limiter's options as a Config says them, for the inline path and the decision listener alike. */
import type { FastifyBaseLogger } from 'fastify'
import type { Config } from '../config/index.js'
import type { Clock } from '../core/clock.js'
import { createIdentify, type ManagedKeys } from '../identity/identify.js'
import type { TokenVerifier } from '../identity/jwt.js'
import type { Store } from '../store/types.js'
import type { LimiterObserver, LimiterOptions, LimitsHolder } from './plugin.js'
import { createQuotaEndpoint } from './quota-endpoint.js'

/** Everything but what a front door adds (its deny status, whether it sees the response). */
export type LimiterBase = Omit<LimiterOptions, 'denyStatus' | 'afterResponse' | 'quota'>

export function limiterOptions (config: Config, store: Store, limits: LimitsHolder, observer: LimiterObserver, clock: Clock, tokens?: TokenVerifier, keys?: ManagedKeys): LimiterBase {
  const base: LimiterBase = { store, identify: createIdentify(config, keys, () => clock.now()), limits, headers: config.headers, observer, clock, usage: { ips: config.usage.ips, retentionDays: config.usage.retentionDays, timeZone: config.timeZone } }
  return tokens === undefined ? base : { ...base, tokens }
}

/** The inline path's options: the base, with QUOTA_PATH's endpoint when it is set. */
export function inlineOptions (config: Config, base: LimiterBase, store: Store, log: FastifyBaseLogger): LimiterOptions {
  if (config.quotaPath === undefined) return base
  const quota = createQuotaEndpoint({ path: config.quotaPath, store, limits: base.limits, apiKeyHeader: config.apiKeyHeader, apiKeys: config.apiKeys, timeZone: config.timeZone, retentionDays: config.usage.retentionDays, clock: base.clock, log })
  return { ...base, quota }
}
