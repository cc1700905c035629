/**
 * ADAPTIVE_LIMITS: when the upstream slows down or fails (p95 latency or the share of
 * 5xx and failures over a threshold) or this process's event loop lags (a timer late by
 * more than a threshold: the process is saturated), every
 * limit is scaled down one step (× STEP_DOWN) per interval, to ADAPTIVE_MIN_FACTOR at
 * most; once healthy again, back up one step (+ STEP_UP) per interval to 1. An interval
 * with too few responses to judge (MIN_SAMPLES) moves nothing, unless QUIET_INTERVALS of
 * them in a row brought no bad response and no lag: then the gateway is idle rather than
 * stuck behind a slow upstream (whose requests end slow, failed or timed out), and the
 * factor goes up a step, so a quiet gateway does not keep an old incident's limits. A
 * struggling upstream gets less traffic to recover with, instead of a steady overload.
 */
import type { FastifyBaseLogger } from 'fastify'
import type { AdaptiveSettings } from '../config/index.js'

export const STEP_DOWN = 0.7
export const STEP_UP = 0.1
/** Responses an interval needs before its latency and error share are judged. */
export const MIN_SAMPLES = 5
/** Unjudged intervals in a row, with nothing bad seen, after which the factor goes up a step. */
export const QUIET_INTERVALS = 5
/** Latencies kept per interval (a reservoir beyond). */
export const MAX_SAMPLES = 10_000
/** How often the event loop's lag is sampled: a timer's lateness is the loop's delay. */
export const LAG_SAMPLE_MS = 50

export class AdaptiveLimits {
  factor = 1
  private latencies: number[] = []
  private seen = 0
  private failures = 0
  /** Unjudged intervals in a row with nothing bad seen. */
  private quiet = 0
  /** The worst event-loop delay seen this interval, in ms. */
  private lagMs = 0
  private lastSample = performance.now()
  private readonly lagTimer: NodeJS.Timeout
  private readonly timer: NodeJS.Timeout

  constructor (private readonly settings: AdaptiveSettings, private readonly onFactor: (factor: number) => void, private readonly log: FastifyBaseLogger) {
    // A timer that fires late by X ms means the loop was busy for X ms. (perf_hooks'
    // monitorEventLoopDelay was tried: it did not register a 200 ms block.)
    this.lagTimer = setInterval(() => this.sampleLag(), LAG_SAMPLE_MS)
    this.lagTimer.unref()
    this.timer = setInterval(() => this.tick(), settings.intervalMs)
    this.timer.unref()
  }

  /** The lag sampler's timer fired at `now` (performance.now()); it was due LAG_SAMPLE_MS after the last. */
  sampleLag (now = performance.now()): void {
    this.lagMs = Math.max(this.lagMs, now - this.lastSample - LAG_SAMPLE_MS)
    this.lastSample = now
  }

  /** One proxied request: how long the upstream took, and whether it failed (5xx, 502, 504). */
  observe (latencyMs: number, failed: boolean): void {
    this.seen++
    if (failed) this.failures++
    if (this.latencies.length < MAX_SAMPLES) this.latencies.push(latencyMs)
    else {
      const i = Math.floor(Math.random() * this.seen)
      if (i < MAX_SAMPLES) this.latencies[i] = latencyMs
    }
  }

  /** Judges the interval just ended and moves the factor one step. */
  tick (): void {
    const reasons: string[] = []
    if (this.seen >= MIN_SAMPLES) {
      const sorted = this.latencies.sort((a, b) => a - b)
      const p95 = sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.95))]!
      if (p95 > this.settings.latencyMs) reasons.push(`upstream p95 ${p95.toFixed(0)} ms > ${this.settings.latencyMs} ms`)
      const share = this.failures / this.seen
      if (share > this.settings.errorRate) reasons.push(`upstream errors ${(share * 100).toFixed(0)}% > ${(this.settings.errorRate * 100).toFixed(0)}%`)
    }
    if (this.lagMs > this.settings.eventLoopDelayMs) reasons.push(`event loop delay ${this.lagMs.toFixed(0)} ms > ${this.settings.eventLoopDelayMs} ms`)

    const judged = this.seen >= MIN_SAMPLES
    // Too few responses to judge (all of them kept, under MAX_SAMPLES), and none of them
    // bad: quiet, if it lasts.
    const quiet = !judged && reasons.length === 0 && this.failures === 0 && !this.latencies.some(ms => ms > this.settings.latencyMs)
    this.quiet = quiet ? this.quiet + 1 : 0
    this.latencies = []
    this.seen = 0
    this.failures = 0
    this.lagMs = 0

    const before = this.factor
    // Down on any cause; up on evidence of health, or after QUIET_INTERVALS quiet ones in
    // a row (an interval with too few responses alone could be an upstream too slow to
    // answer: it holds the factor).
    let why = 'healthy again'
    if (reasons.length > 0) this.factor = Math.max(this.settings.minFactor, +(this.factor * STEP_DOWN).toFixed(3))
    else if (judged) this.factor = Math.min(1, +(this.factor + STEP_UP).toFixed(3))
    else if (this.quiet >= QUIET_INTERVALS) {
      this.quiet = 0
      this.factor = Math.min(1, +(this.factor + STEP_UP).toFixed(3))
      why = 'quiet'
    }
    if (this.factor !== before) {
      this.log.info({ factor: this.factor, was: before, reasons }, reasons.length > 0 ? 'adaptive limits: scaling limits down' : `adaptive limits: ${why}, scaling limits up`)
      this.onFactor(this.factor)
    }
  }

  close (): void {
    clearInterval(this.timer)
    clearInterval(this.lagTimer)
  }
}
