/**
 * Token bucket, computed as GCRA (generic cell rate algorithm): the whole state is one
 * number, the theoretical arrival time (TAT): the instant at which the bucket would be
 * full again. That makes the memory store one number per client and the Redis store one
 * string per key, with exactly the semantics of a bucket of `burst` tokens refilled one
 * token per `intervalMs`, refilled lazily at decision time.
 *
 * Pure: (state, policy, now, cost) → decision and next state. The Redis Lua script
 * mirrors these lines; the shared store-contract table keeps them from drifting.
 */
import type { Decision } from '../decision.js'
import type { Policy } from '../policy.js'

/**
 * Floating-point slack, in milliseconds. Times are epoch milliseconds (~1.7e12), where a
 * double's resolution is ~0.0002 ms; a request exactly on a refill boundary must not be
 * refused because of rounding. One microsecond early is harmless.
 */
export const EPSILON_MS = 0.001

export interface TokenBucketDecision extends Decision {
  /**
   * TAT to store. When rejected it is the input state (a rejection writes nothing), except
   * when that state was left by a stricter limit since changed: then it is the repaired
   * state (an empty bucket under the current limit), which the store must write.
   */
  readonly state: number
  /** Rejected, but the stored state must be replaced by `state` (see above). */
  readonly repair: boolean
}

/**
 * @param tat  the stored TAT, or undefined for a client never seen (a full bucket)
 * @param now  milliseconds since the epoch
 * @param cost tokens this request takes (≥ 1, ≤ burst)
 */
export function tokenBucket (tat: number | undefined, policy: Policy, now: number, cost: number): TokenBucketDecision {
  const interval = policy.intervalMs
  const capacityMs = policy.burst * interval
  // A TAT in the past means a full bucket: start from now. A TAT further ahead than this
  // policy's capacity was left by a stricter limit since changed: an empty bucket under
  // the current limit, not a debt carried over from the old one.
  const repair = tat !== undefined && tat > now + capacityMs
  const base = tat === undefined || tat < now ? now : (repair ? now + capacityMs : tat)
  const next = base + cost * interval
  const allowAt = next - capacityMs
  if (allowAt > now + EPSILON_MS) {
    return {
      policy,
      allowed: false,
      remaining: Math.max(0, Math.floor((now + capacityMs - base + EPSILON_MS) / interval)),
      resetMs: base - now,
      retryAfterMs: allowAt - now,
      state: repair ? base : (tat ?? now),
      repair
    }
  }
  return {
    policy,
    allowed: true,
    remaining: Math.max(0, Math.floor((now + capacityMs - next + EPSILON_MS) / interval)),
    resetMs: next - now,
    retryAfterMs: 0,
    state: next,
    repair: false
  }
}
