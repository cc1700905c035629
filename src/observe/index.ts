/**
 * What the gateway reports, in one place: Prometheus metrics, the aggregated violation
 * log, the top offenders and the alert webhook, and the observers through which the
 * limiter and the forwarder feed them (matching LimiterObserver and UpstreamObserver).
 */
import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import type { Config } from '../config/index.js'
import type { Clock } from '../core/clock.js'
import type { StoreStatus } from '../store/types.js'
import { Alerts } from './alerts.js'
import { Metrics, type CostIgnored, type MetricsSources, type RequestOutcome, type SettleKind } from './metrics.js'
import { TopOffenders } from './offenders.js'
import { ViolationLog } from './violations.js'

export type { Metrics } from './metrics.js'
export type { TopOffenders } from './offenders.js'
export type { Alerts } from './alerts.js'

export interface ObservabilityOptions {
  config: Config
  log: FastifyBaseLogger
  clock: Clock
  store: StoreStatus | undefined
  factors: MetricsSources['factors']
  /** The request's trace span, told each decision (tracing on). */
  trace?: DecisionTrace
  /** See MetricsSources.processMetrics. */
  processMetrics?: boolean
}

/** What a request's trace span is told of its decision (observe/tracing.ts). */
export interface DecisionTrace {
  decided (request: FastifyRequest, outcome: RequestOutcome, client: string | undefined, policy: string | undefined, remaining: number | undefined): void
}

/** The outcomes that are refusals: counted per policy, offender and alert, and logged as violations. */
const REFUSED: Partial<Record<RequestOutcome, true>> = { limited: true, banned: true, concurrency_limited: true }

export class Observability {
  readonly metrics: Metrics
  readonly violations: ViolationLog
  readonly offenders: TopOffenders
  readonly alerts: Alerts | undefined

  /** Requests holding in-flight slots (gateway_in_flight_requests). */
  private inFlightNow = 0

  private readonly trace: DecisionTrace | undefined

  constructor ({ config, log, clock, store, factors, trace, processMetrics }: ObservabilityOptions) {
    this.trace = trace
    this.offenders = new TopOffenders(clock)
    this.metrics = new Metrics({ store, factors, inFlight: () => this.inFlightNow, topClientRate: () => this.offenders.topRate(), processMetrics })
    this.violations = new ViolationLog(log.child({ component: 'violations' }), config.violationLogIntervalMs)
    this.alerts = config.alerts && new Alerts(config.alerts, log.child({ component: 'alerts' }), clock)
  }

  /** What the limiter reports: each request's outcome, decision time and refusals. */
  readonly limiter = {
    report: (request: FastifyRequest, outcome: RequestOutcome, client: string | undefined, policy: string | undefined, remaining: number | undefined): void => {
      this.metrics.requests[outcome].inc()
      // A refusal always names its client and policy; a dry-run one is only logged.
      if (REFUSED[outcome] === true) {
        this.violations.record(client!, policy!, false)
        this.metrics.refused(policy!)
        this.offenders.record(client!)
        this.alerts?.record(client!, policy!)
      } else if (outcome === 'dry_run_would_limit') {
        this.violations.record(client!, policy!, true)
      }
      if (this.trace !== undefined) this.trace.decided(request, outcome, client, policy, remaining)
    },
    decided: (seconds: number): void => { this.metrics.decisionSeconds.observe(seconds) },
    inFlight: (delta: 1 | -1): void => { this.inFlightNow += delta },
    settled: (rule: string, kind: SettleKind): void => { this.metrics.settlements.labels(rule, kind).inc() },
    costIgnored: (rule: string, reason: CostIgnored): void => { this.metrics.costIgnored.labels(rule, reason).inc() }
  }

  /**
   * What the forwarder reports: upstream latency and status classes for proxied requests
   * (not the limiter's own answers). `health` hears each too: whether it went badly.
   */
  upstream (health?: (ms: number, bad: boolean) => void): { response (ms: number, status: number): void, failure (ms: number, kind: 'unavailable' | 'timeout'): void } {
    const metrics = this.metrics
    return {
      response (ms, status) {
        metrics.upstreamSeconds.observe(ms / 1000)
        metrics.upstreamStatus(status)
        health?.(ms, status >= 500)
      },
      failure (ms, kind) {
        metrics.upstreamSeconds.observe(ms / 1000)
        metrics.upstreamFailures[kind].inc()
        health?.(ms, true)
      }
    }
  }

  close (): void {
    this.alerts?.close()
    this.violations.close()
  }
}
