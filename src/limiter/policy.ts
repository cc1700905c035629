/**
 * A Policy is one limit as the limiter applies it: a name (shown in RateLimit-Policy), an
 * algorithm and its parameters, with the parts of the headers that never change rendered
 * once at start-up.
 */
import type { AlgorithmName, Config, LimitSpec } from '../config/index.js'
import type { Identity } from '../identity/identify.js'

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

/**
 * Which limits apply to a client: the global limit (if any) and the client's own: its
 * tier's when it has one, else the default. Each combination is built once, so a client
 * kind always gets the very same array (stores may compare them by identity).
 */
export function createPolicySelector (config: Pick<Config, 'algorithm' | 'limit' | 'globalLimit' | 'tiers'>): (identity: Identity) => readonly Policy[] {
  const global = config.globalLimit ? makePolicy('global', config.algorithm, config.globalLimit, true) : undefined
  const withGlobal = (p: Policy): readonly Policy[] => Object.freeze(global ? [global, p] : [p])
  const byDefault = withGlobal(makePolicy('default', config.algorithm, config.limit))
  if (config.tiers.size === 0) return () => byDefault
  const byTier = new Map<string, readonly Policy[]>()
  for (const [name, limit] of config.tiers) byTier.set(name, withGlobal(makePolicy(name, config.algorithm, limit)))
  // Every key's tier is defined (config refuses others), so the lookup always finds one.
  return identity => (identity.tier === undefined ? byDefault : byTier.get(identity.tier)!)
}
