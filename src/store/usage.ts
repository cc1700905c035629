/**
 * The usage ledger (USAGE_LEDGER, or on with any quota): per client (an API key's digest;
 * IP clients with USAGE_LEDGER_IPS) and per calendar day in QUOTA_TIMEZONE, the requests
 * admitted and refused and the cost charged up front. The stores write it in the decision
 * itself (the Redis script: one hash per client per day, with a TTL); this is the memory
 * store's, bounded like the rest (least recently written lines go first).
 */
import { LRUCache } from 'lru-cache'

/** Where a request is written in the ledger: its day, and how long a day's line is kept. */
export interface UsageMark {
  readonly day: string
  readonly ttlMs: number
}

/** One client's day. */
export interface UsageRow {
  readonly day: string
  readonly admitted: number
  readonly refused: number
  readonly cost: number
}

/** One client's total over some days. */
export interface UsageTotal {
  readonly client: string
  readonly admitted: number
  readonly refused: number
  readonly cost: number
}

/** Reading the ledger (admin API, quota endpoint). */
export interface UsageLedger {
  /** The client's rows for these days, in their order (zeros for a day without a line). */
  usage (client: string, days: readonly string[]): UsageRow[] | Promise<UsageRow[]>
  /** The clients with the most requests admitted over these days, heaviest first. */
  topUsage (days: readonly string[], limit: number): UsageTotal[] | Promise<UsageTotal[]>
}

/** A ledger a store writes in its decisions, and reads. */
export interface LedgerBook extends UsageLedger {
  record (client: string, mark: UsageMark, admitted: boolean, cost: number): void
  usage (client: string, days: readonly string[]): UsageRow[]
  topUsage (days: readonly string[], limit: number): UsageTotal[]
  clear (): void
}

/** Sums the rows of clients into totals, heaviest (most admitted, then most cost) first. */
export function heaviest (lines: Iterable<[client: string, admitted: number, refused: number, cost: number]>, limit: number): UsageTotal[] {
  const totals = new Map<string, [number, number, number]>()
  for (const [client, admitted, refused, cost] of lines) {
    const t = totals.get(client)
    if (t === undefined) totals.set(client, [admitted, refused, cost])
    else { t[0] += admitted; t[1] += refused; t[2] += cost }
  }
  return heaviestOf([...totals].map(([client, [admitted, refused, cost]]) => ({ client, admitted, refused, cost })), limit)
}

/** Totals, heaviest (most admitted, then most cost, then by name) first, at most `limit`. */
export function heaviestOf (totals: UsageTotal[], limit: number): UsageTotal[] {
  return totals.sort((a, b) => b.admitted - a.admitted || b.cost - a.cost || a.client.localeCompare(b.client)).slice(0, limit)
}

export class MemoryLedger implements LedgerBook {
  /** `client|day` → admitted, refused, cost. */
  private readonly lines: LRUCache<string, Float64Array>

  constructor (max: number) {
    this.lines = new LRUCache({ max })
  }

  record (client: string, mark: UsageMark, admitted: boolean, cost: number): void {
    const key = client + '|' + mark.day
    let line = this.lines.get(key)
    if (line === undefined) this.lines.set(key, line = new Float64Array(3))
    if (admitted) {
      line[0]!++
      line[2]! += cost
    } else {
      line[1]!++
    }
  }

  usage (client: string, days: readonly string[]): UsageRow[] {
    return days.map(day => {
      const line = this.lines.peek(client + '|' + day)
      return { day, admitted: line?.[0] ?? 0, refused: line?.[1] ?? 0, cost: line?.[2] ?? 0 }
    })
  }

  topUsage (days: readonly string[], limit: number): UsageTotal[] {
    const wanted = new Set(days)
    const lines: Array<[string, number, number, number]> = []
    for (const [key, line] of this.lines.entries()) {
      const bar = key.lastIndexOf('|')
      if (wanted.has(key.slice(bar + 1))) lines.push([key.slice(0, bar), line[0]!, line[1]!, line[2]!])
    }
    return heaviest(lines, limit)
  }

  clear (): void {
    this.lines.clear()
  }
}
