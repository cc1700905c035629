/**
 * Calendar periods for quotas: a fixed window of `N/d`, `N/w` or `N/mo` is a calendar day,
 * a week from Monday 00:00, or a calendar month, in QUOTA_TIMEZONE (an IANA zone; UTC by
 * default). Days are 23 or 25 hours across a daylight-saving change, months 28 to 31 days:
 * the period is found by the zone's own calendar (luxon), never by adding milliseconds.
 *
 * Pure (a period is a function of the instant, the unit and the zone); each Calendar keeps
 * the period it last answered, so the hot path asks luxon only when a period ends.
 */
import { DateTime, IANAZone } from 'luxon'
import type { CalendarPeriods, CalendarUnit } from '../core/rate.js'

export function isTimeZone (zone: string): boolean {
  return IANAZone.isValidZone(zone)
}

const LUXON_UNIT = { day: 'day', week: 'week', month: 'month' } as const

/** The period of `unit` in `zone` holding `now` (epoch ms): [start, end). */
export function periodAt (now: number, unit: CalendarUnit, zone: string): { start: number, end: number } {
  const at = DateTime.fromMillis(now, { zone })
  // luxon's weeks are ISO weeks: from Monday.
  const start = at.startOf(LUXON_UNIT[unit])
  return { start: start.toMillis(), end: start.plus({ [`${unit}s`]: 1 }).toMillis() }
}

/** The calendar day (YYYY-MM-DD) holding `now` in `zone`. */
export function dayOf (now: number, zone: string): string {
  return DateTime.fromMillis(now, { zone }).toISODate()!
}

export class Calendar implements CalendarPeriods {
  private start = 0
  private end = 0
  private around = ''

  constructor (readonly unit: CalendarUnit, readonly zone: string) {}

  /** The period holding `now`; the same object until it ends (or `now` goes back before it). */
  periodStart (now: number): number {
    if (now >= this.end || now < this.start) this.move(now)
    return this.start
  }

  periodEnd (now: number): number {
    if (now >= this.end || now < this.start) this.move(now)
    return this.end
  }

  boundaries (now: number): string {
    if (now >= this.end || now < this.start) this.move(now)
    return this.around
  }

  private move (now: number): void {
    const p = periodAt(now, this.unit, this.zone)
    this.start = p.start
    this.end = p.end
    this.around = `${periodAt(p.start - 1, this.unit, this.zone).start} ${p.start} ${p.end} ${periodAt(p.end, this.unit, this.zone).end}`
  }
}

/** Where requests go in the usage ledger: the day holding `now`, one object per day. */
export class LedgerDays<T extends { readonly day: string }> {
  private current: T | undefined
  private end = 0
  private start = 0

  constructor (private readonly zone: string, private readonly make: (day: string) => T) {}

  at (now: number): T {
    if (this.current === undefined || now >= this.end || now < this.start) {
      const p = periodAt(now, 'day', this.zone)
      this.start = p.start
      this.end = p.end
      this.current = this.make(dayOf(now, this.zone))
    }
    return this.current
  }
}

/** The days from `from` to `to` (YYYY-MM-DD, both included), at most `max` of them; undefined when `from` is after `to` or there are more. */
export function daysBetween (from: string, to: string, max: number): string[] | undefined {
  let day = DateTime.fromISO(from, { zone: 'UTC' })
  const last = DateTime.fromISO(to, { zone: 'UTC' })
  const out: string[] = []
  while (day <= last) {
    if (out.length === max) return undefined
    out.push(day.toISODate()!)
    day = day.plus({ days: 1 })
  }
  return out.length === 0 ? undefined : out
}

/** The day `n` days before `day` (YYYY-MM-DD). */
export function daysBefore (day: string, n: number): string {
  return DateTime.fromISO(day, { zone: 'UTC' }).minus({ days: n }).toISODate()!
}
