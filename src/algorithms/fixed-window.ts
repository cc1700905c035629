/**
 * Fixed window: at most `burst` requests (the rate's count) in each window of the rate's
 * period, windows aligned to the epoch (a per-minute window starts on the minute, a
 * per-day one at 00:00 UTC), so every instance and every client agrees on the boundary.
 * The count resets at once at the boundary, which allows up to twice the capacity in a short
 * span around it; the sliding window exists to prevent exactly that.
 *
 * A window of `N/d`, `N/w` or `N/mo` counts calendar periods instead (a day, a week from
 * Monday, a month, in QUOTA_TIMEZONE: calendar.ts); the Redis script is then given the
 * period's start and length.
 *
 * State: [window start, count]. Pure; mirrored in the Redis Lua script.
 */
import type { Policy } from '../core/policy.js'
import type { Verdict } from './types.js'

/** The aligned window of `size` ms holding `now`. */
export function windowStart (now: number, size: number): number {
  return Math.floor(now / size) * size
}

/** Start and end of the window holding `at`: a calendar period, or an aligned window. */
export function fixedPeriod (policy: Policy, at: number): [start: number, end: number] {
  const calendar = policy.calendar
  if (calendar !== undefined) return [calendar.periodStart(at), calendar.periodEnd(at)]
  const start = windowStart(at, policy.windowMs)
  return [start, start + policy.windowMs]
}

export function fixedWindow (state: readonly number[] | undefined, policy: Policy, now: number, cost: number): Verdict {
  const limit = policy.capacity
  const calendar = policy.calendar
  const start = calendar === undefined ? windowStart(now, policy.windowMs) : calendar.periodStart(now)
  const count = state !== undefined && state[0] === start ? state[1]! : 0
  const resetMs = (calendar === undefined ? start + policy.windowMs : calendar.periodEnd(now)) - now
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
