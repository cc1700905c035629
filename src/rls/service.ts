/**
 * The rate limit service (Envoy's RLS v3, ShouldRateLimit): a domain and descriptors in,
 * a code per descriptor and one overall out, decided by the gateway's own stores.
 *
 * Each descriptor meets at most one configured limit (limits.ts). Unlimited ones, ones
 * `replaces`d by another limit of the same question, and ones meeting no limit are OK
 * without the store. The rest are decided in one store call (one Redis round trip):
 * admitted only if every enforced limit admits, and then each is charged; refused, none
 * is (envoyproxy/ratelimit charges every counter, over or not). A descriptor's own
 * `hits_addend` differing from the others' makes a store call per distinct addend, in
 * order; a later one's refusal leaves the earlier charges (as envoyproxy/ratelimit does).
 *
 * Counters are per descriptor value: the store key is the limit and the domain with the
 * descriptor's entries. The ban subject (RATE_LIMIT_BAN_*, PUT /admin/clients/ban) is the
 * first limited descriptor of the question, `rls:<domain>|<key>_<value>[.<key>_<value>]`.
 */
import type { FastifyBaseLogger } from 'fastify'
import { Counter, Histogram, type Registry } from 'prom-client'
import { mostRestrictive, type Decision } from '../core/decision.js'
import type { Policy } from '../core/policy.js'
import type { HeadersMode } from '../config/index.js'
import type { RlsConfig, RlsLimitSpec, RlsUnit } from '../config/rls.js'
import { StoreUnavailableError } from '../errors.js'
import { rateLimitHeaders, retryAfterSeconds } from '../limiter/headers.js'
import { isPromise, type Store } from '../store/types.js'
import { createThrottledLog } from '../log.js'
import { matchLimit, RlsPolicies, type RlsEntry } from './limits.js'

/**
 * As grpc-js decodes them (proto-loader's `defaults` and `arrays`: a scalar left out is its
 * default, a message left out null, a repeated field always an array).
 */
export interface RlsDescriptor {
  entries: RlsEntry[]
  limit?: { requests_per_unit?: number, unit?: string } | null
  hits_addend?: { value?: number | string } | null
}
export interface RlsRequest { domain: string, descriptors: RlsDescriptor[], hits_addend?: number }
export type RlsCode = 'OK' | 'OVER_LIMIT'
export interface RlsStatus {
  code: RlsCode
  current_limit?: { name: string, requests_per_unit: number, unit: string }
  limit_remaining: number
  duration_until_reset?: { seconds: number, nanos: number }
}
export interface RlsResponse {
  overall_code: RlsCode
  statuses: RlsStatus[]
  response_headers_to_add: Array<{ key: string, value: string }>
}

/**
 * A descriptor's name in the store: its domain and entries, envoyproxy/ratelimit-style
 * (`rls:edge|remote_address_10.0.0.1`). With its limit's name, its counter's key; alone,
 * what a ban names.
 */
export function subjectOf (domain: string, entries: readonly RlsEntry[]): string {
  return `rls:${domain}|${entries.map(e => e.value ? `${e.key!}_${e.value}` : e.key).join('.')}`
}

/** A question Envoy should never send (no domain, no descriptors, an empty entry): INVALID_ARGUMENT. */
export class RlsInvalidError extends Error {}

/** What each descriptor's answer was (gateway_rls_descriptors_total's `code`). */
export type DescriptorOutcome = 'ok' | 'over_limit' | 'shadow_over_limit' | 'unlimited' | 'replaced' | 'no_limit' | 'banned' | 'store_error'

const MAX_UINT32 = 4_294_967_295
/**
 * A question's bounds (INVALID_ARGUMENT past them): Envoy's rate_limits make a few
 * descriptors of a few entries each; these keep one question from making a store call of
 * thousands of keys, or keys of megabytes.
 */
const MAX_DESCRIPTORS = 64
const MAX_ENTRIES = 32
const MAX_TEXT = 1024
const UNIT_OF_ENUM: Record<string, RlsUnit> = { SECOND: 'second', MINUTE: 'minute', HOUR: 'hour', DAY: 'day', MONTH: 'month' }

/** One descriptor the store decides. */
interface Planned {
  readonly index: number
  readonly policy: Policy
  readonly subject: string
  readonly cost: number
  /** Envoy's RateLimit: name, requests_per_unit, unit. */
  readonly current: { name: string, requests_per_unit: number, unit: string }
  /** The metrics' descriptor label: the configured path, or `override`. */
  readonly label: string
}

export interface RlsServiceOptions {
  store: Store
  headers: HeadersMode
  timeZone: string
  config: RlsConfig
  log: FastifyBaseLogger
  registry: Registry
  /** RATE_LIMIT_DRY_RUN: every limit reports and never refuses (envoyproxy/ratelimit's SHADOW_MODE). */
  dryRun: boolean
  /**
   * A descriptor over its limit (or banned; `dryRun`: a shadow one over it): the violation
   * log and the top offenders, by the descriptor's subject.
   */
  refused: (subject: string, policy: string, dryRun: boolean) => void
}

/** A ban answers for every descriptor of the question: its one decision, n times; else the decisions. */
function banAll (ds: Decision[], n: number): Decision[] {
  return ds[0]!.banned === true ? new Array<Decision>(n).fill(ds[0]!) : ds
}

export class RateLimitService {
  config: RlsConfig
  private readonly policies: RlsPolicies
  private readonly descriptors: Counter
  private readonly seconds: Histogram
  private readonly storeErrorLog: (err: unknown) => void

  constructor (private readonly opts: RlsServiceOptions) {
    this.config = opts.config
    this.policies = new RlsPolicies(opts.timeZone, opts.dryRun)
    const registers = [opts.registry]
    this.descriptors = new Counter({ name: 'gateway_rls_descriptors_total', help: 'Rate limit service descriptors answered, by domain, configured descriptor (never a value) and outcome', labelNames: ['domain', 'descriptor', 'code'], registers })
    this.seconds = new Histogram({ name: 'gateway_rls_decision_seconds', help: 'Time to answer a rate limit service question', labelNames: ['code'], buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05], registers })
    this.storeErrorLog = createThrottledLog(opts.log, 'warn', 'rate-limit store failed; rate limit service answering OVER_LIMIT (STORE_FAILURE_MODE=closed)')
  }

  /**
   * Where a descriptor's counter is (the admin API): its subject, the configured limit it
   * meets and that limit's Policy (none when unlimited or when it meets no limit).
   */
  locate (domain: string, entries: readonly RlsEntry[]): { subject: string, limit: RlsLimitSpec | undefined, policy: Policy | undefined } {
    const limit = matchLimit(this.config.domains.get(domain), entries)
    return { subject: subjectOf(domain, entries), limit, policy: limit === undefined || limit.unlimited ? undefined : this.policies.of(limit) }
  }

  /** Answers one question: at once with the memory store, a promise with Redis. */
  shouldRateLimit (request: RlsRequest): RlsResponse | Promise<RlsResponse> {
    const started = performance.now()
    const domain = request.domain
    const descriptors = request.descriptors
    if (domain === '') throw new RlsInvalidError('rate limit domain must not be empty')
    if (descriptors.length === 0) throw new RlsInvalidError('rate limit descriptor list must not be empty')
    if (descriptors.length > MAX_DESCRIPTORS) throw new RlsInvalidError(`at most ${MAX_DESCRIPTORS} descriptors in a question, got ${descriptors.length}`)
    if (domain.length > MAX_TEXT) throw new RlsInvalidError(`a domain of at most ${MAX_TEXT} characters`)
    const root = this.config.domains.get(domain)
    const domainLabel = root === undefined ? 'unknown' : domain
    const statuses: RlsStatus[] = new Array(descriptors.length)
    const specs: Array<RlsLimitSpec | undefined> = new Array(descriptors.length)
    const planned: Planned[] = []
    const replaced = new Set<string>()
    const requestHits = Math.max(1, request.hits_addend!)
    for (let i = 0; i < descriptors.length; i++) {
      const d = descriptors[i]!
      const entries = d.entries
      if (entries.length === 0 || entries.some(e => !e.key)) throw new RlsInvalidError(`descriptor ${i}: every descriptor needs entries, each with a key`)
      if (entries.length > MAX_ENTRIES || entries.some(e => e.key!.length + e.value!.length > MAX_TEXT)) throw new RlsInvalidError(`descriptor ${i}: at most ${MAX_ENTRIES} entries, each key and value together at most ${MAX_TEXT} characters`)
      const subject = subjectOf(domain, entries)
      const cost = d.hits_addend?.value === undefined ? requestHits : Number(d.hits_addend.value)
      const overrideUnit = d.limit?.unit === undefined ? undefined : UNIT_OF_ENUM[d.limit.unit]
      if (overrideUnit !== undefined) {
        const rpu = d.limit!.requests_per_unit!
        planned.push({ index: i, policy: this.policies.override(domain, rpu, overrideUnit), subject, cost, current: { name: '', requests_per_unit: rpu, unit: d.limit!.unit! }, label: 'override' })
        continue
      }
      const spec = matchLimit(root, entries)
      specs[i] = spec
      if (spec === undefined) {
        statuses[i] = { code: 'OK', limit_remaining: 0 }
        this.count(domainLabel, 'none', 'no_limit')
      } else if (spec.unlimited) {
        statuses[i] = { code: 'OK', limit_remaining: MAX_UINT32 }
        this.count(domainLabel, spec.descriptor, 'unlimited')
      } else {
        for (const name of spec.replaces) replaced.add(name)
        planned.push({ index: i, policy: this.policies.of(spec), subject, cost, current: { name: spec.name ?? '', requests_per_unit: spec.requestsPerUnit, unit: spec.unit!.toUpperCase() }, label: spec.descriptor })
      }
    }
    // A limit named in another's `replaces` stands down for this question.
    const decided = replaced.size === 0
      ? planned
      : planned.filter(p => {
        const spec = specs[p.index]
        if (spec?.name === undefined || !replaced.has(spec.name)) return true
        statuses[p.index] = { code: 'OK', limit_remaining: 0 }
        this.count(domainLabel, p.label, 'replaced')
        return false
      })
    if (decided.length === 0) return this.finish(statuses, [], started)
    return this.decide(domainLabel, decided, statuses, started)
  }

  /**
   * The store's decisions for the planned descriptors: one call when they share one cost
   * and no counter twice (what Envoy sends), else a call per distinct cost, each counter
   * once, stopping at the first refused.
   */
  private decide (domain: string, planned: Planned[], statuses: RlsStatus[], started: number): RlsResponse | Promise<RlsResponse> {
    const n = planned.length
    const cost = planned[0]!.cost
    let once = true
    for (let i = 1; i < n && once; i++) {
      const p = planned[i]!
      if (p.cost !== cost) once = false
      for (let j = 0; j < i && once; j++) if (planned[j]!.subject === p.subject && planned[j]!.policy.name === p.policy.name) once = false
    }
    if (!once) return this.decideInGroups(domain, planned, statuses, started)
    const policies: Policy[] = new Array(n)
    const subjects: string[] = new Array(n)
    for (let i = 0; i < n; i++) {
      policies[i] = planned[i]!.policy
      subjects[i] = planned[i]!.subject
    }
    let result: Decision[] | Promise<Decision[]>
    try {
      result = this.opts.store.consume(subjects[0]!, policies, cost, subjects)
    } catch (err) {
      return this.failed(domain, planned, statuses, started, err)
    }
    if (!isPromise(result)) return this.respond(domain, planned, banAll(result, n), statuses, started)
    return result.then(ds => this.respond(domain, planned, banAll(ds, n), statuses, started), err => this.failed(domain, planned, statuses, started, err))
  }

  /** decide()'s general case: the same counter twice, or descriptors of different costs. */
  private async decideInGroups (domain: string, planned: Planned[], statuses: RlsStatus[], started: number): Promise<RlsResponse> {
    // The same descriptor twice in one question is one counter, decided once.
    const unique = new Map<string, Planned>()
    for (const p of planned) if (!unique.has(p.policy.name + '\0' + p.subject)) unique.set(p.policy.name + '\0' + p.subject, p)
    const byCost = new Map<number, Planned[]>()
    for (const p of unique.values()) {
      const group = byCost.get(p.cost)
      if (group === undefined) byCost.set(p.cost, [p])
      else group.push(p)
    }
    const decisions = new Map<Planned, Decision>()
    try {
      for (const group of byCost.values()) {
        const ds = await this.opts.store.consume(planned[0]!.subject, group.map(p => p.policy), group[0]!.cost, group.map(p => p.subject))
        if (ds[0]!.banned === true) return this.respond(domain, planned, banAll(ds, planned.length), statuses, started)
        group.forEach((p, j) => decisions.set(p, ds[j]!))
        if (!ds.every(d => d.allowed || d.policy.dryRun)) break
      }
    } catch (err) {
      return this.failed(domain, planned, statuses, started, err)
    }
    // Not asked (undefined): an earlier group was refused, so this one was never charged.
    return this.respond(domain, planned, planned.map(p => decisions.get(unique.get(p.policy.name + '\0' + p.subject)!)), statuses, started)
  }

  /** The store failed: every planned descriptor OVER_LIMIT (STORE_FAILURE_MODE=closed). */
  private failed (domain: string, planned: Planned[], statuses: RlsStatus[], started: number, err: unknown): RlsResponse {
    if (!(err instanceof StoreUnavailableError)) throw err
    this.storeErrorLog(err)
    for (const p of planned) {
      statuses[p.index] = { code: 'OVER_LIMIT', current_limit: p.current, limit_remaining: 0 }
      this.count(domain, p.label, 'store_error')
    }
    return this.finish(statuses, [], started)
  }

  /** The answer from each planned descriptor's decision (`decided[i]` is planned[i]'s). */
  private respond (domain: string, planned: Planned[], decided: ReadonlyArray<Decision | undefined>, statuses: RlsStatus[], started: number): RlsResponse {
    const shown: Decision[] = []
    let retryMs = -1
    for (let i = 0; i < planned.length; i++) {
      const p = planned[i]!
      const d = decided[i]
      if (d === undefined) {
        statuses[p.index] = { code: 'OK', current_limit: p.current, limit_remaining: 0 }
        this.count(domain, p.label, 'ok')
        continue
      }
      const ms = Math.max(0, d.banned === true ? d.retryAfterMs : d.resetMs)
      const reset = { seconds: Math.floor(ms / 1000), nanos: Math.round((ms % 1000) * 1e6) }
      if (d.allowed) {
        statuses[p.index] = { code: 'OK', current_limit: p.current, limit_remaining: Math.min(MAX_UINT32, Math.floor(d.remaining)), duration_until_reset: reset }
        this.count(domain, p.label, 'ok')
      } else if (d.policy.dryRun) {
        // shadow_mode: counted and reported, never the reason for OVER_LIMIT.
        statuses[p.index] = { code: 'OK', current_limit: p.current, limit_remaining: 0, duration_until_reset: reset }
        this.count(domain, p.label, 'shadow_over_limit')
        this.opts.refused(p.subject, p.policy.name, true)
      } else {
        statuses[p.index] = { code: 'OVER_LIMIT', current_limit: p.current, limit_remaining: 0, duration_until_reset: reset }
        this.count(domain, p.label, d.banned === true ? 'banned' : 'over_limit')
        this.opts.refused(p.subject, d.policy.name, false)
        if (d.retryAfterMs > retryMs) retryMs = d.retryAfterMs
      }
      if (d.banned !== true && !shown.includes(d)) shown.push(d)
    }
    let headers: string[] = []
    if (shown.length > 0) headers = rateLimitHeaders(this.opts.headers, shown, mostRestrictive(shown)) ?? []
    if (retryMs >= 0) headers.push('retry-after', String(retryAfterSeconds(retryMs)))
    return this.finish(statuses, headers, started)
  }

  private finish (statuses: RlsStatus[], headers: string[], started: number): RlsResponse {
    const over = statuses.some(s => s.code === 'OVER_LIMIT')
    const toAdd: Array<{ key: string, value: string }> = []
    for (let i = 0; i < headers.length; i += 2) toAdd.push({ key: headers[i]!, value: headers[i + 1]! })
    const code: RlsCode = over ? 'OVER_LIMIT' : 'OK'
    this.seconds.labels(code).observe((performance.now() - started) / 1000)
    return { overall_code: code, statuses, response_headers_to_add: toAdd }
  }

  private count (domain: string, descriptor: string, code: DescriptorOutcome): void {
    this.descriptors.labels(domain, descriptor, code).inc()
  }
}
