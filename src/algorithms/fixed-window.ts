/**
 * Fixed window: at most `burst` requests (the rate's count) in each window of the rate's
 * period, windows aligned to the epoch (a per-minute window starts on the minute, a
 * per-day one at 00:00 UTC), so every instance and every client agrees on the boundary.
 * The quota resets at once at the boundary, which allows up to twice the quota in a short
 * span around it; the sliding window exists to prevent exactly that.
 *
 * State: [window start, count]. Pure; mirrored in the Redis Lua script.
 */
import type { Policy } from '../core/policy.js'
import type { Verdict } from './types.js'

export function fixedWindow (state: readonly number[] | undefined, policy: Policy, now: number, cost: number): Verdict {
  const size = policy.windowMs
  const limit = policy.quota
  const start = Math.floor(now / size) * size
  const count = state !== undefined && state[0] === start ? state[1]! : 0
  const resetMs = start + size - now
  if (count + cost > limit) {
    return {
      policy,
      allowed: false,
      remaining: Math.max(0, limit - count),
      resetMs,
      retryAfterMs: resetMs,
      delayMs: 0,
      state: state!,
      repair: false
    }
  }
  return { policy, allowed: true, remaining: limit - count - cost, resetMs, retryAfterMs: 0, delayMs: 0, state: [start, count + cost], repair: false }
}
