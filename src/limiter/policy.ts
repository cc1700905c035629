/**
 * A Policy is one limit as the limiter applies it: a name (shown in RateLimit-Policy), an
 * algorithm and its parameters, with the parts of the headers that never change rendered
 * once at start-up.
 */
import type { AlgorithmName, LimitSpec } from '../config/index.js'

export interface Policy {
  /** Shown in RateLimit-Policy and RateLimit, and part of every store key. */
  readonly name: string
  readonly algorithm: AlgorithmName
  /** Bucket capacity: how many requests may arrive at once. */
  readonly burst: number
  /** Milliseconds to earn back one request (the rate's period / count). */
  readonly intervalMs: number
  /** The rate as configured, e.g. `10/s`. */
  readonly rate: string
  /** Whether the key is shared by every client (the global limit). */
  readonly shared: boolean
  /** The RateLimit-Policy list item, e.g. `"default";q=20;w=2`. */
  readonly policyItem: string
  /** The start of the RateLimit list item, e.g. `"default";r=`. */
  readonly limitItemPrefix: string
}

export function makePolicy (name: string, algorithm: AlgorithmName, limit: LimitSpec, shared = false): Policy {
  const intervalMs = limit.rate.periodMs / limit.rate.count
  // The window over which the quota q=burst comes back in full; q/w is the long-run rate.
  const windowS = Math.max(1, Math.ceil(limit.burst * intervalMs / 1000))
  return Object.freeze({
    name,
    algorithm,
    burst: limit.burst,
    intervalMs,
    rate: limit.rate.text,
    shared,
    policyItem: `"${name}";q=${limit.burst};w=${windowS}`,
    limitItemPrefix: `"${name}";r=`
  })
}
