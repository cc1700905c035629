/**
 * A Policy is one limit as the limiter applies it: a name (shown in RateLimit-Policy), an
 * algorithm and its parameters, with the parts of the headers that never change rendered
 * once at start-up (or rules load).
 */
import type { AlgorithmName, LimitSpec } from '../config/index.js'

export interface Policy {
  /** Shown in RateLimit-Policy and RateLimit, and part of every store key. */
  readonly name: string
  readonly algorithm: AlgorithmName
  /**
   * The quota: bucket capacity (token and leaky bucket: requests that may arrive at once),
   * or requests per window (fixed and sliding window: the rate's count).
   */
  readonly burst: number
  /** Buckets: milliseconds to earn back one request (the rate's period / count). */
  readonly intervalMs: number
  /** The window the quota q=burst belongs to: a window's length, or a full bucket's refill. */
  readonly windowMs: number
  /** Leaky bucket: the longest a request is held back before it is refused instead; else 0. */
  readonly maxDelayMs: number
  /** Counted and reported, but never the reason a request is refused (dry run). */
  readonly dryRun: boolean
  /** The rate as configured, e.g. `10/s`. */
  readonly rate: string
  /** Whether the key is shared by every client (the global limit). */
  readonly shared: boolean
  /** The RateLimit-Policy list item, e.g. `"default";q=20;w=2`. */
  readonly policyItem: string
  /** The start of the RateLimit list item, e.g. `"default";r=`. */
  readonly limitItemPrefix: string
}

export interface PolicySpec extends LimitSpec {
  readonly algorithm: AlgorithmName
  /** Leaky bucket only (ignored by the others). */
  readonly maxDelayMs: number
  readonly dryRun: boolean
}

/** Window algorithms count whole requests per period; buckets refill a burst at a rate. */
export function isWindow (algorithm: AlgorithmName): boolean {
  return algorithm === 'fixed-window' || algorithm === 'sliding-window'
}

export function makePolicy (name: string, spec: PolicySpec, shared = false): Policy {
  const { rate, algorithm } = spec
  const window = isWindow(algorithm)
  // A window's quota is the rate's count per its period; BURST is a bucket's capacity.
  const burst = window ? rate.count : spec.burst
  const intervalMs = rate.periodMs / rate.count
  const windowMs = window ? rate.periodMs : burst * intervalMs
  return Object.freeze({
    name,
    algorithm,
    burst,
    intervalMs,
    windowMs,
    maxDelayMs: algorithm === 'leaky-bucket' ? spec.maxDelayMs : 0,
    dryRun: spec.dryRun,
    rate: rate.text,
    shared,
    // q/w is the long-run rate; w is whole seconds (the field is an integer).
    policyItem: `"${name}";q=${burst};w=${Math.max(1, Math.ceil(windowMs / 1000))}`,
    limitItemPrefix: `"${name}";r=`
  })
}
