/**
 * What the gateway reports, in one place: Prometheus metrics, the aggregated violation
 * log, the top offenders and the alert webhook, and the observers through which the
 * limiter and the forwarder feed them (matching LimiterObserver and UpstreamObserver).
 */
import type { FastifyBaseLogger } from 'fastify'
import type { Config } from '../config/index.js'
import type { Clock } from '../core/clock.js'
import type { StoreStatus } from '../store/types.js'
import { Alerts } from './alerts.js'
import { Metrics, type CostIgnored, type MetricsSources, type RequestOutcome, type SettleKind } from './metrics.js'
import { TopOffenders } from './offenders.js'
import { ViolationLog } from './violations.js'

export interface ObservabilityOptions {
  config: Config
  log: FastifyBaseLogger
  clock: Clock
  store: StoreStatus | undefined
  factors: MetricsSources['factors']
}

export class Observability {
  readonly metrics: Metrics
  readonly violations: ViolationLog
  readonly offenders: TopOffenders
  readonly alerts: Alerts | undefined

  /** Requests holding in-flight slots (gateway_in_flight_requests). */
  private inFlightNow = 0

  constructor ({ config, log, clock, store, factors }: ObservabilityOptions) {
    this.offenders = new TopOffenders(clock)
    this.metrics = new Metrics({ store, factors, inFlight: () => this.inFlightNow, topClientRate: () => this.offenders.topRate() })
    this.violations = new ViolationLog(log.child({ component: 'violations' }), config.violationLogIntervalMs)
    this.alerts = config.alerts && new Alerts(config.alerts, log.child({ component: 'alerts' }), clock)
  }

  /** What the limiter reports: each request's outcome, decision time and refusals. */
  readonly limiter = {
    outcome: (outcome: RequestOutcome): void => { this.metrics.requests[outcome].inc() },
    decided: (seconds: number): void => { this.metrics.decisionSeconds.observe(seconds) },
    refused: (client: string, policy: string, dryRun: boolean): void => {
      this.violations.record(client, policy, dryRun)
      if (dryRun) return
      this.metrics.refused(policy)
      this.offenders.record(client)
      this.alerts?.record(client, policy)
    },
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
