/**
 * Prometheus metrics (prom-client), in a registry of this app's own: requests by
 * outcome, decision latency, store mode, upstream latency and status classes, tracked
 * clients, the limit factors and rule reloads. No label ever names a client: label values
 * come from small fixed sets, so cardinality stays bounded whatever the traffic.
 */
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client'
import { Histogram } from './histogram.js'
import type { StoreStatus } from '../store/types.js'

export const OUTCOMES = ['allowed', 'delayed', 'limited', 'concurrency_limited', 'banned', 'allowlisted', 'skipped', 'dry_run_would_limit', 'store_error', 'token_invalid'] as const
export type RequestOutcome = typeof OUTCOMES[number]
/** How a charge was settled by its response (gateway_charge_settlements_total's kind). */
export type SettleKind = 'refund' | 'post_charge' | 'cost_refund'
/** Why a cost header was not used (gateway_cost_header_ignored_total's reason). */
export type CostIgnored = 'absent' | 'invalid' | 'too_large'
export const STORE_MODES = ['memory', 'redis', 'local-fallback', 'fail-open', 'fail-closed'] as const
const CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const

/** One label value's increments not yet added to its counter. */
class Pending {
  n = 0
  inc (): void { this.n++ }
}

/**
 * A counter with one label whose hot-path increments are plain numbers, added to the
 * prom-client counter when it is read (a scrape, the admin stats): prom-client hashes the
 * labels on every inc(), even a bound child's, which cost ~0.3 µs a request (profiled).
 * The `values` known up front have their series from the start (at 0), so a rate() over
 * them works from the first scrape; `of()` adds a value met later (a policy's name).
 */
function deferredCounter<L extends string> (opts: { name: string, help: string, label: string, values: readonly L[], registers: Registry[] }): { counter: Counter, byValue: Record<L, Pending>, of: (value: string) => Pending } {
  const pending = new Map<string, Pending>()
  const counter = new Counter({
    name: opts.name,
    help: opts.help,
    labelNames: [opts.label],
    registers: opts.registers,
    collect () {
      for (const [value, p] of pending) {
        this.labels(value).inc(p.n)
        p.n = 0
      }
    }
  })
  const of = (value: string): Pending => {
    let p = pending.get(value)
    if (p === undefined) {
      p = new Pending()
      pending.set(value, p)
    }
    return p
  }
  const byValue = {} as Record<L, Pending>
  for (const v of opts.values) byValue[v] = of(v)
  return { counter, byValue, of }
}

export interface MetricsSources {
  store: StoreStatus | undefined
  /** The emergency factor (admin API) and the adaptive one. */
  factors: () => { emergency: number, adaptive: number }
  /** Requests of this instance holding in-flight slots now. */
  inFlight: () => number
  /** Refusals per second of the client refused most over the last minute. */
  topClientRate: () => number
  /**
   * The process's own metrics (CPU, memory, event loop: prom-client's defaults); false in
   * a worker thread (WORKERS > 1), whose sums the main thread reports with its own.
   */
  processMetrics?: boolean
}

export class Metrics {
  readonly registry = new Registry()
  /** Per outcome: counting a request is one increment of a number (deferredCounter). */
  readonly requests: Record<RequestOutcome, { inc: () => void }>
  readonly requestsTotal: Counter
  readonly upstreamResponses: Counter
  readonly decisionSeconds: Histogram
  readonly upstreamSeconds: Histogram
  private readonly upstreamClasses: Array<{ inc: () => void }>
  readonly upstreamFailures: Record<'unavailable' | 'timeout', { inc: () => void }>
  readonly rulesReloads: Record<'applied' | 'rejected', { inc: () => void }>
  readonly settingsChanges: Counter
  /** Refusals (not dry run) per policy (a deferredCounter: policy names are met as they refuse). */
  private readonly refusalsOf: (policy: string) => Pending
  /** Charges settled by the response, per rule and kind (count/refund, costHeader). */
  readonly settlements: Counter
  /** Cost headers the upstream left out or sent unusable, per rule and reason. */
  readonly costIgnored: Counter

  /** Requests of this instance holding in-flight slots now. */
  readonly inFlight: () => number

  constructor (sources: MetricsSources) {
    this.inFlight = sources.inFlight
    const registers = [this.registry]
    const requests = deferredCounter({ name: 'gateway_requests_total', help: 'Client requests by what the limiter did with them', label: 'outcome', values: OUTCOMES, registers })
    this.requests = requests.byValue
    this.requestsTotal = requests.counter
    const zero = <T extends { inc: (n?: number) => void }>(child: T): T => { child.inc(0); return child }
    this.decisionSeconds = new Histogram({
      name: 'gateway_decision_duration_seconds',
      help: 'Time to decide a request: identify, match limits, consume from the store',
      buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25],
      registers
    })
    this.upstreamSeconds = new Histogram({
      name: 'gateway_upstream_duration_seconds',
      help: 'Time from forwarding a request to the end of the upstream response (or the 502/504 answered instead)',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers
    })
    const responses = deferredCounter({ name: 'gateway_upstream_responses_total', help: 'Upstream responses by status class', label: 'class', values: CLASSES, registers })
    this.upstreamClasses = CLASSES.map(c => responses.byValue[c])
    this.upstreamResponses = responses.counter
    this.upstreamFailures = deferredCounter({ name: 'gateway_upstream_failures_total', help: 'Proxied requests the upstream did not answer: unavailable (502) or timeout (504)', label: 'kind', values: ['unavailable', 'timeout'] as const, registers }).byValue
    // `aggregator`: how the main thread sums worker threads' metrics (WORKERS > 1; prom-client's
    // AggregatorRegistry, default sum). What every thread does alike (a reload, a settings change,
    // the shared store's size, the mode) counts once: the largest; a factor: the strictest.
    const reloads = new Counter({ name: 'gateway_rules_reloads_total', help: 'Rules file reloads by result', labelNames: ['result'], registers, aggregator: 'max' })
    this.rulesReloads = { applied: zero(reloads.labels('applied')), rejected: zero(reloads.labels('rejected')) }
    this.settingsChanges = new Counter({ name: 'gateway_settings_changes_total', help: 'Runtime settings applied (from this instance or the fleet)', registers, aggregator: 'max' })
    this.refusalsOf = deferredCounter({
      name: 'gateway_refusals_total',
      help: 'Requests refused (429 or the deny status), per policy that refused them: a rate limit, a quota, a concurrency limit, a ban (not dry run)',
      label: 'policy',
      values: [],
      registers
    }).of
    this.settlements = new Counter({
      name: 'gateway_charge_settlements_total',
      help: 'Charges settled by the response under a route rule: refund (count/refund by status), post_charge and cost_refund (costHeader above or below the up-front cost)',
      labelNames: ['rule', 'kind'],
      registers
    })
    this.costIgnored = new Counter({
      name: 'gateway_cost_header_ignored_total',
      help: 'Responses whose cost header was absent, invalid (not a whole number ≥ 0) or too_large (above 1000000): the up-front cost stood',
      labelNames: ['rule', 'reason'],
      registers
    })

    const { store } = sources
    new Gauge({
      name: 'gateway_store_mode',
      help: 'What decides right now: 1 for the current mode (redis, or the failure mode while Redis is unavailable)',
      labelNames: ['mode'],
      registers,
      aggregator: 'max',
      collect () {
        const mode = store?.mode()
        for (const m of STORE_MODES) this.labels(m).set(m === mode ? 1 : 0)
      }
    })
    new Gauge({
      name: 'gateway_tracked_clients',
      help: 'Keys the local store tracks (memory store or local fallback; with Redis, its local denials)',
      registers,
      aggregator: 'max',
      collect () { this.set(store?.size() ?? 0) }
    })
    const inFlightGauge: Gauge = new Gauge({
      name: 'gateway_in_flight_requests',
      help: 'Requests of this instance holding in-flight (concurrency) slots now',
      registers,
      collect: () => { inFlightGauge.set(this.inFlight()) }
    })
    const topClient: Gauge = new Gauge({
      name: 'gateway_top_client_refusals_per_second',
      help: 'Refusals per second of the one client refused most over the last minute (which client: /admin/offenders); 0 when nobody is refused',
      registers,
      collect: () => { topClient.set(sources.topClientRate()) }
    })
    new Gauge({
      name: 'gateway_limit_factor',
      help: 'Factor every limit is scaled by: emergency (admin API) and adaptive (upstream health)',
      labelNames: ['source'],
      registers,
      aggregator: 'min',
      collect () {
        const f = sources.factors()
        this.labels('emergency').set(f.emergency)
        this.labels('adaptive').set(f.adaptive)
      }
    })
    if (sources.processMetrics !== false) collectDefaultMetrics({ register: this.registry })
  }

  /** A refusal by `policy` (bounded: policy names come from the configuration). */
  refused (policy: string): void {
    this.refusalsOf(policy).inc()
  }

  /** A response from the upstream, by status class (fastify only sends 100-599). */
  upstreamStatus (status: number): void {
    this.upstreamClasses[Math.floor(status / 100) - 1]!.inc()
  }
}

/** A counter's values by its one label, e.g. { allowed: 12, limited: 3 }. */
/** A registry's metrics as prom-client's JSON (what worker threads send to be summed). */
export type MetricsJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>

export async function countsByLabel (counter: Counter, label: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {}
  for (const v of (await counter.get()).values) out[String(v.labels[label])] = v.value
  return out
}

/**
 * Charges settled by the response, per rule: `refund`, `post_charge`, `cost_refund`, and
 * the cost headers not used as `ignored_<reason>` (admin stats, dashboard).
 */
export async function settlementsOf (metrics: Pick<Metrics, 'settlements' | 'costIgnored'>): Promise<Array<{ rule: string, kind: string, count: number }>> {
  const out = (await metrics.settlements.get()).values.map(v => ({ rule: String(v.labels.rule), kind: String(v.labels.kind), count: v.value }))
  for (const v of (await metrics.costIgnored.get()).values) out.push({ rule: String(v.labels.rule), kind: `ignored_${String(v.labels.reason)}`, count: v.value })
  return out.sort((a, b) => a.rule.localeCompare(b.rule) || a.kind.localeCompare(b.kind))
}
