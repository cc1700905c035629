import type { Policy } from './policy.js'

/** The outcome of one policy for one request. */
export interface Decision {
  readonly policy: Policy
  readonly allowed: boolean
  /** Whole requests the client may still make right now (after this one, if allowed). */
  readonly remaining: number
  /** Milliseconds until the quota is back in full. */
  readonly resetMs: number
  /** Milliseconds until this request would be admitted; 0 when allowed. */
  readonly retryAfterMs: number
}

/**
 * The decision that speaks for the request: the rejecting one that waits longest, or, when
 * all allow, the one with the fewest requests left.
 */
export function mostRestrictive (decisions: readonly Decision[]): Decision {
  let pick = decisions[0]!
  for (let i = 1; i < decisions.length; i++) {
    const d = decisions[i]!
    if (pick.allowed
      ? (!d.allowed || d.remaining < pick.remaining || (d.remaining === pick.remaining && d.resetMs > pick.resetMs))
      : (!d.allowed && d.retryAfterMs > pick.retryAfterMs)) {
      pick = d
    }
  }
  return pick
}
