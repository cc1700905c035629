/**
 * Token bucket and leaky bucket, both computed as GCRA (generic cell rate algorithm): the
 * whole state is one number, the theoretical arrival time (TAT): the instant at which the
 * bucket would be full again (token bucket) or empty again (leaky bucket: the same line
 * seen as water). That makes the memory store one number per client and the Redis store
 * one string per key, with exactly the semantics of a bucket of `burst` tokens refilled
 * one token per `intervalMs`, refilled lazily at decision time.
 *
 * The leaky bucket shapes instead of only refusing: a request the bucket cannot take now
 * is admitted with a delay (the moment it could be taken) when that delay is at most
 * `maxDelayMs`, so the upstream sees a stream at the leak rate (nginx `limit_req` with
 * `burst` and `delay`). With `maxDelayMs` 0 both are the same algorithm.
 *
 * Pure: (state, policy, now, cost) → outcome and next state. The Redis Lua script mirrors
 * these lines; the shared store-contract table keeps them from drifting.
 */
import type { Policy } from '../core/policy.js'
import type { Verdict } from './types.js'

/**
 * Floating-point slack, in milliseconds. Times are epoch milliseconds (~1.7e12), where a
 * double's resolution is ~0.0002 ms; a request exactly on a refill boundary must not be
 * refused because of rounding. One microsecond early is harmless.
 */
export const EPSILON_MS = 0.001

/**
 * @param tat  the stored TAT, or undefined for a client never seen (a full bucket)
 * @param now  milliseconds since the epoch
 * @param cost tokens this request takes (≥ 1, ≤ burst)
 */
export function tokenBucket (tat: number | undefined, policy: Policy, now: number, cost: number): Verdict {
  const interval = policy.intervalMs
  const capacityMs = policy.capacity * interval
  // How far ahead a TAT may legitimately be: a full bucket, plus the queue of delayed
  // requests a leaky bucket holds.
  const limitMs = capacityMs + policy.maxDelayMs
  // A TAT in the past means a full bucket: start from now. A TAT further ahead than this
  // policy allows was left by a stricter limit since changed: an empty bucket under the
  // current limit, not a debt carried over from the old one.
  const repair = tat !== undefined && tat > now + limitMs
  const base = tat === undefined || tat < now ? now : (repair ? now + limitMs : tat)
  const next = base + cost * interval
  const wait = next - capacityMs - now
  if (wait > policy.maxDelayMs + EPSILON_MS) {
    return {
      policy,
      allowed: false,
      remaining: Math.max(0, Math.floor((now + capacityMs - base + EPSILON_MS) / interval)),
      resetMs: base - now,
      retryAfterMs: wait - policy.maxDelayMs,
      delayMs: 0,
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
    delayMs: wait > EPSILON_MS ? wait : 0,
    state: next,
    repair: false
  }
}
