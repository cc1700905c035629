/**
 * Settling a charge once the response is known (route rules' `count`, `refund` and
 * `costHeader`): the request paid its cost up front; the difference is charged or given
 * back here. Pure, one function for the four algorithms, mirrored in the Lua script
 * (SETTLE_LUA) and held to it by the store-contract table.
 *
 * - delta < 0, a refund: given back from where it was charged. A bucket's TAT moves back
 *   (never before now: a bucket is never more than full); a window's count drops in the
 *   window that holds the charge (the charge's own window, or, for a sliding window, the
 *   previous one once it has rolled), never below 0. A charge whose window has passed has
 *   nothing left to give back.
 * - delta > 0, a post-charge: the work is done, so it is charged even past what is left,
 *   but only down to an empty limit, never into a debt (a bucket beyond empty would read
 *   as state left by a stricter limit, see token-bucket.ts): the client waits at most one
 *   full refill, as after using its whole limit.
 */
import type { Policy } from '../core/policy.js'
import { fixedPeriod } from './fixed-window.js'
import { countsAt } from './sliding-window.js'
import type { State } from './types.js'

/** The state to store and when it means nothing any more (epoch ms). */
export interface Settled {
  readonly state: State
  readonly expiresAt: number
}

/**
 * @param state     the stored state, undefined: a full limit
 * @param now       epoch ms
 * @param chargedAt when the request was charged (epoch ms): which window holds the charge
 * @param delta     cost to add (> 0) or give back (< 0)
 * @returns the new state, or undefined when nothing changes
 */
export function settle (policy: Policy, state: State | undefined, now: number, chargedAt: number, delta: number): Settled | undefined {
  if (delta === 0) return undefined
  // Exhaustive, no default: a fifth algorithm is a compile error here too (algorithms/index.ts).
  switch (policy.algorithm) {
    case 'token-bucket':
    case 'leaky-bucket':
      return settleBucket(policy, typeof state === 'number' ? state : undefined, now, delta)
    case 'fixed-window':
      return settleFixed(policy, typeof state === 'object' && state.length === 2 ? state : undefined, now, chargedAt, delta)
    case 'sliding-window':
      return settleSliding(policy, typeof state === 'object' && state.length === 3 ? state : undefined, now, chargedAt, delta)
  }
}

function settleBucket (policy: Policy, tat: number | undefined, now: number, delta: number): Settled | undefined {
  const interval = policy.intervalMs
  if (delta < 0) {
    // Full already: nothing to give back.
    if (tat === undefined || tat <= now) return undefined
    const back = Math.max(now, tat + delta * interval)
    return { state: back, expiresAt: back }
  }
  const limit = now + policy.capacity * interval + policy.maxDelayMs
  const base = tat === undefined || tat < now ? now : tat
  const next = Math.min(limit, base + delta * interval)
  if (next <= base) return undefined
  return { state: next, expiresAt: next }
}

function settleFixed (policy: Policy, fixed: readonly number[] | undefined, now: number, chargedAt: number, delta: number): Settled | undefined {
  if (delta < 0) {
    const [charged, end] = fixedPeriod(policy, chargedAt)
    if (fixed === undefined || fixed[0] !== charged || fixed[1]! <= 0) return undefined
    return { state: [charged, Math.max(0, fixed[1]! + delta)], expiresAt: end }
  }
  const [start, end] = fixedPeriod(policy, now)
  const count = fixed !== undefined && fixed[0] === start ? fixed[1]! : 0
  const next = Math.min(Math.max(count, policy.capacity), count + delta)
  if (next <= count) return undefined
  return { state: [start, next], expiresAt: end }
}

function settleSliding (policy: Policy, sliding: readonly number[] | undefined, now: number, chargedAt: number, delta: number): Settled | undefined {
  const size = policy.windowMs
  if (delta < 0) {
    if (sliding === undefined) return undefined
    const charged = Math.floor(chargedAt / size) * size
    const [start, previous, current] = sliding as [number, number, number]
    if (start === charged && current > 0) return { state: [start, previous, Math.max(0, current + delta)], expiresAt: start + 2 * size }
    if (start === charged + size && previous > 0) return { state: [start, Math.max(0, previous + delta), current], expiresAt: start + 2 * size }
    return undefined
  }
  const start = Math.floor(now / size) * size
  const [previous, current] = countsAt(sliding, start, size)
  const used = previous * (1 - (now - start) / size) + current
  const add = Math.min(delta, policy.capacity - used)
  if (add <= 0) return undefined
  return { state: [start, previous, current + add], expiresAt: start + 2 * size }
}
