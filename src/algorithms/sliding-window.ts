/**
 * Sliding window, as the weighted two-window counter: the count of the previous aligned
 * window, weighted by how much of it the sliding window still covers, plus the count of
 * the current one. O(1) memory per client (three numbers), where an exact log would keep
 * one timestamp per request.
 *
 * It removes the fixed window's boundary burst: a client that used its capacity at the end
 * of one window gets back only the share of the new window elapsed so far (at most
 * capacity × (1 + elapsed / window) in a span around the boundary, against 2 × capacity for a
 * fixed window). The estimate assumes the previous window's requests were spread evenly.
 *
 * State: [current window start, previous count, current count]. Pure; mirrored in Lua.
 */
import type { Policy } from '../core/policy.js'
import type { Verdict } from './types.js'

/** Slack on counts: a weighted count is a fraction and must not refuse by rounding. */
export const COUNT_EPSILON = 1e-9

/**
 * The previous and current windows' counts at the window starting at `start`: a state of
 * this window as it is, one of the window before as its previous, anything older as none.
 */
export function countsAt (state: readonly number[] | undefined, start: number, size: number): [previous: number, current: number] {
  if (state === undefined) return [0, 0]
  if (state[0] === start) return [state[1]!, state[2]!]
  return state[0] === start - size ? [state[2]!, 0] : [0, 0]
}

export function slidingWindow (state: readonly number[] | undefined, policy: Policy, now: number, cost: number): Verdict {
  const size = policy.windowMs
  const limit = policy.capacity
  const start = Math.floor(now / size) * size
  const [previous, current] = countsAt(state, start, size)
  const used = previous * (1 - (now - start) / size) + current
  if (used + cost > limit + COUNT_EPSILON) {
    // When enough of the previous window will have slid out: later in this window if the
    // current count leaves room, else in the next one, where this window's count weighs.
    const retryAt = current + cost <= limit
      ? start + size * (1 - (limit - current - cost) / previous)
      : start + size + size * Math.max(0, 1 - (limit - cost) / current)
    return {
      policy,
      allowed: false,
      remaining: Math.max(0, Math.floor(limit - used + COUNT_EPSILON)),
      resetMs: (current > 0 ? start + 2 * size : start + size) - now,
      retryAfterMs: retryAt - now,
      delayMs: 0,
      state: state!,
      repair: false
    }
  }
  return {
    policy,
    allowed: true,
    remaining: Math.max(0, Math.floor(limit - used - cost + COUNT_EPSILON)),
    // The limit is back in full once this window's requests have slid out too.
    resetMs: start + 2 * size - now,
    retryAfterMs: 0,
    delayMs: 0,
    state: [start, previous, current + cost],
    repair: false
  }
}
