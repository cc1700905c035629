/**
 * A Policy is one limit as the limiter applies it: a name (shown in RateLimit-Policy), an
 * algorithm and its parameters, with the parts of the headers that never change rendered
 * once at start-up (or rules load).
 */
import type { CalendarPeriods, RateSpec } from './rate.js'

export const ALGORITHMS = ['token-bucket', 'sliding-window', 'fixed-window', 'leaky-bucket'] as const
export type AlgorithmName = typeof ALGORITHMS[number]

/** A limit as configured: a rate and a burst (a bucket's capacity; windows ignore it). */
export interface LimitSpec {
  readonly rate: RateSpec
  readonly burst: number
  /**
   * A client limit's quota besides its rate (RATE_LIMIT_QUOTA, a tier's `+N/mo`): a fixed
   * window over calendar periods, never scaled by the emergency or adaptive factor.
   */
  readonly quota?: RateSpec
}

/** RATE_LIMIT_BAN_*: after `after` refusals within `windowMs`, refuse the client for `durationMs`. */
export interface BanSettings {
  readonly after: number
  readonly windowMs: number
  readonly durationMs: number
}

/**
 * What a decision carries of the limit that made it: its name, size and header items. A
 * rate limit (Policy) is one; so are a ban's refusal and an in-flight limit's, which have
 * no algorithm, rate or window.
 */
export interface PolicyLabel {
  /** Shown in RateLimit-Policy and RateLimit, and part of every store key. */
  readonly name: string
  /** See Policy.capacity; an in-flight limit's: its slots; a ban's: 0. */
  readonly capacity: number
  /** Counted and reported, but never the reason a request is refused (dry run). */
  readonly dryRun: boolean
  /** See Policy.refundable. */
  readonly refundable: boolean
  /** Whether the key is shared by every client (the global limit). */
  readonly shared: boolean
  /** The RateLimit-Policy list item, e.g. `"default";q=20;w=2`. */
  readonly policyItem: string
  /** The start of the RateLimit list item, e.g. `"default";r=`. */
  readonly limitItemPrefix: string
}

export interface Policy extends PolicyLabel {
  readonly algorithm: AlgorithmName
  /**
   * The capacity: requests that may arrive at once (token and leaky bucket: the configured
   * burst), or requests per window (fixed and sliding window: the rate's count).
   * X-RateLimit-Limit and RateLimit-Policy's q (the draft's "quota") show it. Not to be
   * confused with a quota here: a calendar allowance (`N/mo`, `calendar` below).
   */
  readonly capacity: number
  /** Buckets: milliseconds to earn back one request (the rate's period / count). */
  readonly intervalMs: number
  /** The window the capacity belongs to: a window's length, or a full bucket's refill. */
  readonly windowMs: number
  /** Leaky bucket: the longest a request is held back before it is refused instead; else 0. */
  readonly maxDelayMs: number
  /**
   * Its charges may be given back after the response (a route rule's `count`, `refund` or
   * `costHeader`): a refusal is then no lasting knowledge (the Redis deny cache skips it).
   */
  readonly refundable: boolean
  /** A fixed window counting calendar periods (days, weeks, months in QUOTA_TIMEZONE); else undefined. */
  readonly calendar: CalendarPeriods | undefined
  /** The rate as configured, e.g. `10/s`. */
  readonly rate: string
}

export interface PolicySpec extends LimitSpec {
  readonly algorithm: AlgorithmName
  /** Leaky bucket only (ignored by the others). */
  readonly maxDelayMs: number
  readonly dryRun: boolean
  /** See Policy.refundable (default false). */
  readonly refundable?: boolean
  /** A fixed window of `N/d`, `N/w` or `N/mo`: its calendar periods (ignored by the other algorithms). */
  readonly calendar?: CalendarPeriods
}

/** Window algorithms count whole requests per period; buckets refill a burst at a rate. */
export function isWindow (algorithm: AlgorithmName): boolean {
  return algorithm === 'fixed-window' || algorithm === 'sliding-window'
}

/** Longest search for a whole-second window holding a whole number of requests. */
const MAX_WINDOW_SEARCH = 3_600

/**
 * RateLimit-Policy's q and w (w in whole seconds, the field is an integer), with q/w the
 * long-run rate exactly. A window algorithm: its capacity per window. A bucket: its burst over
 * the time to refill it, when that is whole seconds; otherwise the smallest whole number of
 * seconds from there that earns a whole number of requests (2/s, burst 1: q=2;w=1; 0.3/s:
 * q=3;w=10), failing that the requests such a window earns, rounded down (never more than
 * the rate allows).
 */
export function policyWindow (burst: number, intervalMs: number, windowMs: number): { q: number, w: number } {
  const seconds = windowMs / 1000
  if (Math.abs(seconds - Math.round(seconds)) < 1e-9 * Math.max(1, seconds) && Math.round(seconds) >= 1) return { q: burst, w: Math.round(seconds) }
  const perSecond = 1000 / intervalMs
  const first = Math.max(1, Math.ceil(seconds))
  for (let w = first; w < first + MAX_WINDOW_SEARCH; w++) {
    const q = w * perSecond
    if (Math.abs(q - Math.round(q)) < 1e-9 * q) return { q: Math.round(q), w }
  }
  return { q: Math.max(1, Math.floor(first * perSecond)), w: first }
}

export function makePolicy (name: string, spec: PolicySpec, shared = false): Policy {
  const { rate, algorithm } = spec
  const window = isWindow(algorithm)
  // A window's capacity is the rate's count per its period; BURST is a bucket's.
  const capacity = window ? rate.count : spec.burst
  const intervalMs = rate.periodMs / rate.count
  const windowMs = window ? rate.periodMs : capacity * intervalMs
  const { q, w } = policyWindow(capacity, intervalMs, windowMs)
  return Object.freeze({
    name,
    algorithm,
    capacity,
    intervalMs,
    windowMs,
    maxDelayMs: algorithm === 'leaky-bucket' ? spec.maxDelayMs : 0,
    dryRun: spec.dryRun,
    refundable: spec.refundable ?? false,
    calendar: algorithm === 'fixed-window' ? spec.calendar : undefined,
    rate: rate.text,
    shared,
    policyItem: `"${name}";q=${q};w=${w}`,
    limitItemPrefix: `"${name}";r=`
  })
}

/**
 * An in-flight (concurrency) limit: at most `max` requests of one subject (a client, a
 * rule's subject, or everyone when `shared`) in progress upstream at once.
 */
export interface ConcurrencyLimit {
  /** Shown in RateLimit-Policy, and part of the store key. */
  readonly name: string
  readonly max: number
  /** One limit for everyone (the global one). */
  readonly shared: boolean
  /** The RateLimit-Policy item, e.g. `"concurrency";q=4;qu="concurrent-requests"` (draft-10). */
  readonly policyItem: string
  /** The limit as the label of a refusal's decision (its name and capacity). */
  readonly policy: PolicyLabel
}

export function makeConcurrencyLimit (name: string, max: number, shared = false): ConcurrencyLimit {
  const policyItem = `"${name}";q=${max};qu="concurrent-requests"`
  const policy: PolicyLabel = Object.freeze({ name, capacity: max, dryRun: false, refundable: false, shared, policyItem, limitItemPrefix: `"${name}";r=` })
  return Object.freeze({ name, max, shared, policyItem, policy })
}

/**
 * The in-flight limits a request takes a slot in, with whose each is (per limit, the
 * subject when not the client's own; a shared limit ignores it), under one lease id that
 * names this request's slots until they are released.
 */
export interface SlotRequest {
  readonly limits: readonly ConcurrencyLimit[]
  readonly subjects: readonly string[] | undefined
  readonly lease: string
}
