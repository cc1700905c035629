/**
 * Rates: `10/s` is 10 requests per second. The vocabulary's leaf: imports nothing.
 */
/** A rate such as `10/s`: `count` requests per `periodMs`. */
export interface RateSpec {
  readonly count: number
  readonly periodMs: number
  /** As written by the operator, normalised (`10/s`). */
  readonly text: string
}

const PERIOD_MS: Record<string, number> = {
  s: 1_000, sec: 1_000, second: 1_000,
  m: 60_000, min: 60_000, minute: 60_000,
  h: 3_600_000, hour: 3_600_000,
  d: 86_400_000, day: 86_400_000
}
const RATE_RE = /^\s*(\d+(?:\.\d+)?)\s*\/\s*([a-z]+)\s*$/i
export const RATE_FORMAT = 'a positive number of requests per unit: N/s, N/m, N/h or N/d (e.g. 10/s, 600/m)'
/**
 * Fastest rate a limit may have. Bucket times are epoch milliseconds, whose doubles
 * resolve ~0.0002 ms; at 100,000/s a token is 0.01 ms, still 40 steps of that.
 */
export const MAX_RATE_PER_SECOND = 100_000

export function parseRate (text: string): RateSpec {
  const m = RATE_RE.exec(text)
  const unit = m?.[2]?.toLowerCase()
  const periodMs = unit === undefined ? undefined : PERIOD_MS[unit]
  const count = Number(m?.[1])
  if (m === null || periodMs === undefined || !(count > 0) || !Number.isFinite(count)) {
    throw new Error(`expected ${RATE_FORMAT}, got "${text}"`)
  }
  if (count * 1000 / periodMs > MAX_RATE_PER_SECOND) {
    throw new Error(`"${text}" is faster than the maximum of ${MAX_RATE_PER_SECOND}/s per limit`)
  }
  return Object.freeze({ count, periodMs, text: `${count}/${unit![0]}` })
}
