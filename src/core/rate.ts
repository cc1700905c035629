/**
 * Rates: `10/s` is 10 requests per second. The vocabulary's leaf: imports nothing.
 */
/** Calendar periods a fixed window can count in (quotas): a day, a week, a month. */
export type CalendarUnit = 'day' | 'week' | 'month'

/** A fixed window's calendar periods in a time zone (algorithms/calendar.ts). */
export interface CalendarPeriods {
  readonly unit: CalendarUnit
  /** Start and end (epoch ms) of the period holding `now`. */
  periodStart (now: number): number
  periodEnd (now: number): number
  /**
   * The boundaries around the period holding `now`, as text for the Redis script: the
   * previous period's start, this one's start and end, and the next one's end ("b0 b1 b2 b3").
   * The script picks the period holding Redis TIME among them, so a gateway whose clock is
   * off by up to a period still counts the period Redis says it is.
   */
  boundaries (now: number): string
}

/** A rate such as `10/s`: `count` requests per `periodMs`. */
export interface RateSpec {
  readonly count: number
  /** The period; a week's or a 30-day month's for `w` and `mo` (a fixed window counts calendar ones). */
  readonly periodMs: number
  /** As written by the operator, normalised (`10/s`). */
  readonly text: string
  /** `d`, `w` and `mo`: the calendar period a fixed window counts in (other algorithms: days only, as a rate). */
  readonly calendar?: CalendarUnit
}

const DAY_MS = 86_400_000
const PERIOD_MS: Record<string, number> = {
  s: 1_000, sec: 1_000, second: 1_000,
  m: 60_000, min: 60_000, minute: 60_000,
  h: 3_600_000, hour: 3_600_000,
  d: DAY_MS, day: DAY_MS,
  w: 7 * DAY_MS, week: 7 * DAY_MS,
  mo: 30 * DAY_MS, month: 30 * DAY_MS
}
const CALENDAR: Record<number, CalendarUnit> = { [DAY_MS]: 'day', [7 * DAY_MS]: 'week', [30 * DAY_MS]: 'month' }
/** How a rate is written back, per period. */
export const UNIT_OF_PERIOD: Record<number, string> = { 1000: 's', 60_000: 'm', 3_600_000: 'h', [DAY_MS]: 'd', [7 * DAY_MS]: 'w', [30 * DAY_MS]: 'mo' }
const RATE_RE = /^\s*(\d+(?:\.\d+)?)\s*\/\s*(\d+)?\s*([a-z]+)\s*$/i
export const RATE_FORMAT = 'a positive number of requests per unit: N/s, N/m, N/h, N/d, N/w or N/mo, or per several units, N/5m (e.g. 10/s, 600/m, 100/5m, 10000/mo)'
/** Most units in one window (N/5m: 5): a window of up to a thousand units. */
const MAX_MULTIPLIER = 1000
/**
 * Fastest rate a limit may have. Bucket times are epoch milliseconds, whose doubles
 * resolve ~0.0002 ms; at 100,000/s a token is 0.01 ms, still 40 steps of that.
 */
export const MAX_RATE_PER_SECOND = 100_000

export function parseRate (text: string): RateSpec {
  const m = RATE_RE.exec(text)
  const unit = m?.[3]?.toLowerCase()
  const multiplier = m?.[2] === undefined ? 1 : Number(m[2])
  const unitMs = unit === undefined ? undefined : PERIOD_MS[unit]
  const count = Number(m?.[1])
  if (m === null || unitMs === undefined || !(count > 0) || !Number.isFinite(count) || !(multiplier >= 1 && multiplier <= MAX_MULTIPLIER)) {
    throw new Error(`expected ${RATE_FORMAT}, got "${text}"`)
  }
  const periodMs = unitMs * multiplier
  if (count * 1000 / periodMs > MAX_RATE_PER_SECOND) {
    throw new Error(`"${text}" is faster than the maximum of ${MAX_RATE_PER_SECOND}/s per limit`)
  }
  // N/d, N/w and N/mo are calendar periods; N/2d is a window of two days, like N/48h.
  const calendar = multiplier === 1 ? CALENDAR[periodMs] : undefined
  const normal = `${count}/${multiplier === 1 ? '' : multiplier}${UNIT_OF_PERIOD[unitMs]!}`
  return Object.freeze(calendar === undefined ? { count, periodMs, text: normal } : { count, periodMs, text: normal, calendar })
}

/** Units from the largest: a period is written in the first it is a whole number of. */
const UNITS_MS = [30 * DAY_MS, 7 * DAY_MS, DAY_MS, 3_600_000, 60_000, 1000]

/** A period as a rate writes it: `s`, `5m`, `mo` (the largest unit it is a whole number of; seconds at least). */
export function periodText (periodMs: number): string {
  const ms = UNITS_MS.find(ms => periodMs % ms === 0 || ms === 1000)!
  return periodMs === ms ? UNIT_OF_PERIOD[ms]! : `${periodMs / ms}${UNIT_OF_PERIOD[ms]!}`
}
