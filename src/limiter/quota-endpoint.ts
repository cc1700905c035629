/**
 * QUOTA_PATH (e.g. `/_quota`): a key holder asks the gateway, on the client port, for its
 * own key's limits, what is left of each and when it is back, and its usage this quota
 * period. Only for a registered API key (401 otherwise), never reaching the upstream, and
 * limited by a small limit of its own per address, kept in this process, so that it cannot
 * be used to flood the shared store.
 */
import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify'
import { LRUCache } from 'lru-cache'
import { tokenBucket } from '../algorithms/token-bucket.js'
import { daysBetween, dayOf } from '../algorithms/calendar.js'
import type { Clock } from '../core/clock.js'
import { makePolicy } from '../core/policy.js'
import { parseRate } from '../core/rate.js'
import { QuotaEndpointLimitedError, QuotaKeyRequiredError, renderProblem, sendProblem, StoreUnavailableError } from '../errors.js'
import { apiKeyId, type Identity } from '../identity/identify.js'
import type { ClientAdmin } from '../store/types.js'
import { createThrottledLog } from '../log.js'
import { retryAfterSeconds } from './headers.js'
import type { SelectLimits } from './limits.js'

/** The endpoint's own limit, per address: 1 a second, 10 at once. */
export const QUOTA_ENDPOINT_LIMIT = makePolicy('quota-endpoint', { rate: parseRate('1/s'), burst: 10, algorithm: 'token-bucket', maxDelayMs: 0, dryRun: false })
/** The longest calendar period, in days (a month). */
const MAX_PERIOD_DAYS = 31
/** Addresses the endpoint's limit remembers at most. */
const TRACKED = 10_000
const KEY_REQUIRED = new QuotaKeyRequiredError()
const KEY_REQUIRED_BODY = renderProblem(401, KEY_REQUIRED.message, KEY_REQUIRED.code)
const UNAVAILABLE = new StoreUnavailableError()
const UNAVAILABLE_BODY = renderProblem(503, UNAVAILABLE.message, UNAVAILABLE.code)

export interface QuotaEndpointOptions {
  path: string
  store: ClientAdmin
  /** The limits in force (replaced whole on a reload). */
  limits: { readonly current: SelectLimits }
  apiKeyHeader: string
  apiKeys: ReadonlyMap<string, string | undefined>
  timeZone: string
  retentionDays: number
  clock: Clock
  /** Where a store failure is said (a line at most every few seconds). */
  log: FastifyBaseLogger
}

export interface QuotaEndpoint {
  /** Whether a request URL is for the endpoint (its path, with or without a query). */
  matches (url: string): boolean
  answer (request: FastifyRequest, reply: FastifyReply): void
}

export function createQuotaEndpoint (opts: QuotaEndpointOptions): QuotaEndpoint {
  const { path, store, clock } = opts
  const asked = new LRUCache<string, number>({ max: TRACKED })
  const storeErrorLog = createThrottledLog(opts.log, 'warn', 'quota endpoint: the store failed')

  async function describe (identity: Identity): Promise<unknown> {
    const select = opts.limits.current
    const policies = select.policiesOf(identity)
    const state = await store.inspect(identity.key, policies)
    const now = clock.now()
    const limits = policies.map((policy, i) => {
      const s = state.limits[i]!
      const period = policy.calendar === undefined
        ? {}
        : { periodStart: new Date(policy.calendar.periodStart(now)).toISOString(), periodEnd: new Date(policy.calendar.periodEnd(now)).toISOString() }
      return { name: policy.name, rate: policy.rate, quota: policy.capacity, remaining: s.remaining, resetSeconds: Math.ceil(s.resetMs / 1000), ...period }
    })
    // This quota period's usage: from the first day of the client's quota (its first
    // calendar limit; today without one), at most the days the ledger keeps.
    const calendar = policies.find(p => p.calendar !== undefined)?.calendar
    const today = dayOf(now, opts.timeZone)
    const from = dayOf(calendar?.periodStart(now) ?? now, opts.timeZone)
    const days = daysBetween(from, today, MAX_PERIOD_DAYS)!.slice(-opts.retentionDays)
    const rows = await store.usage(identity.key, days)
    const total = rows.reduce((t, r) => ({ admitted: t.admitted + r.admitted, refused: t.refused + r.refused, cost: t.cost + r.cost }), { admitted: 0, refused: 0, cost: 0 })
    return { client: identity.key, tier: identity.tier ?? null, limits, usage: { from: days[0], to: today, ...total } }
  }

  return {
    matches (url: string): boolean {
      return url.startsWith(path) && (url.length === path.length || url[path.length] === '?')
    },

    answer (request: FastifyRequest, reply: FastifyReply): void {
      // Its own limit first, per address: unknown keys cannot flood it either.
      const address = request.ip
      const now = clock.now()
      const d = tokenBucket(asked.get(address), QUOTA_ENDPOINT_LIMIT, now, 1)
      if (!d.allowed) {
        const seconds = retryAfterSeconds(d.retryAfterMs)
        const err = new QuotaEndpointLimitedError(seconds)
        sendProblem(reply.header('retry-after', String(seconds)), 429, renderProblem(429, err.message, err.code))
        return
      }
      asked.set(address, d.state as number)
      const key = request.headers[opts.apiKeyHeader]
      if (typeof key !== 'string' || !opts.apiKeys.has(key)) {
        sendProblem(reply.header('www-authenticate', `ApiKey header="${opts.apiKeyHeader}"`), 401, KEY_REQUIRED_BODY)
        return
      }
      const identity: Identity = { key: apiKeyId(key), source: 'api-key', tier: opts.apiKeys.get(key) }
      describe(identity).then(body => {
        reply.header('cache-control', 'no-store').send(body)
      }, (err: unknown) => {
        storeErrorLog(err)
        sendProblem(reply, 503, UNAVAILABLE_BODY)
      })
    }
  }
}
