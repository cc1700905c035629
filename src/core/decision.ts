import type { ConcurrencyLimit, PolicyLabel } from './policy.js'

/** The outcome of one policy for one request. */
export interface Decision {
  /** A rate limit's Policy, or the label of a ban's or an in-flight limit's refusal. */
  readonly policy: PolicyLabel
  readonly allowed: boolean
  /** Whole requests the client may still make right now (after this one, if allowed). */
  readonly remaining: number
  /** Milliseconds until the limit is back in full. */
  readonly resetMs: number
  /** Milliseconds until this request would be admitted; 0 when allowed. */
  readonly retryAfterMs: number
  /** Leaky bucket: how long an admitted request is held before it goes upstream; else 0. */
  readonly delayMs: number
  /** The client is banned (RATE_LIMIT_BAN_AFTER): refused with 403 whatever the limits say. */
  readonly banned?: boolean
  /** Refused by this in-flight limit: every one of its slots is taken (the rate limits were not charged). */
  readonly concurrency?: ConcurrencyLimit
}

/** Shown as the policy of a banned client's refusal. */
export const BAN_POLICY: PolicyLabel = Object.freeze({
  name: 'ban',
  capacity: 0,
  dryRun: false,
  refundable: false,
  shared: false,
  policyItem: '"ban";q=0',
  limitItemPrefix: '"ban";r='
})

/** The answer for a banned client: refused, whatever the limits say, for `ms` more. */
export function bannedDecision (ms: number): Decision[] {
  return [{ policy: BAN_POLICY, allowed: false, remaining: 0, resetMs: ms, retryAfterMs: ms, delayMs: 0, banned: true }]
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

/** Retry-After of a request refused by an in-flight limit: a slot may free at any moment. */
export const CONCURRENCY_RETRY_MS = 1000

/** The answer for a request whose in-flight limit is full: refused, nothing charged. */
export function concurrencyDecision (limit: ConcurrencyLimit): Decision[] {
  return [{ policy: limit.policy, allowed: false, remaining: 0, resetMs: 0, retryAfterMs: CONCURRENCY_RETRY_MS, delayMs: 0, concurrency: limit }]
}
