/**
 * The usage ledger of a memory store on shared zones (WORKERS > 1): every line's counts
 * (admitted, refused, cost per client and day) in a zone every worker writes under its
 * lock, so a client's usage is exact whichever worker answered it. A zone keeps hashes,
 * not names: each thread remembers the lines it wrote, and the heaviest clients are
 * listed from those names with the shared counts (the main thread asks every worker and
 * merges: exact, since a client heavy enough for the whole list is heavy enough for the
 * list of a worker that saw it).
 */
import { LRUCache } from 'lru-cache'
import { heaviest, type LedgerBook, type UsageMark, type UsageRow, type UsageTotal } from '../usage.js'
import type { SharedZone } from './zone.js'

export class SharedLedger implements LedgerBook {
  /** `client|day` of the lines this thread wrote. */
  private readonly names: LRUCache<string, true>
  /** The one line a write locks, reused. */
  private readonly one = ['']

  constructor (private readonly zone: SharedZone, max: number) {
    this.names = new LRUCache({ max })
  }

  record (client: string, mark: UsageMark, admitted: boolean, cost: number): void {
    const key = client + '|' + mark.day
    this.one[0] = key
    this.zone.lock(this.one)
    const line = this.zone.get(key) as number[] | undefined
    const [a, r, c] = line ?? [0, 0, 0]
    this.zone.set(key, admitted ? [a! + 1, r!, c! + cost] : [a!, r! + 1, c!], Infinity)
    this.zone.unlock()
    this.names.set(key, true)
  }

  usage (client: string, days: readonly string[]): UsageRow[] {
    return days.map(day => {
      const line = this.zone.peek(client + '|' + day) as number[] | undefined
      return { day, admitted: line?.[0] ?? 0, refused: line?.[1] ?? 0, cost: line?.[2] ?? 0 }
    })
  }

  topUsage (days: readonly string[], limit: number): UsageTotal[] {
    const wanted = new Set(days)
    const lines: Array<[string, number, number, number]> = []
    for (const key of this.names.keys()) {
      const bar = key.lastIndexOf('|')
      if (!wanted.has(key.slice(bar + 1))) continue
      const line = this.zone.peek(key) as number[] | undefined
      if (line !== undefined) lines.push([key.slice(0, bar), line[0]!, line[1]!, line[2]!])
    }
    return heaviest(lines, limit)
  }

  /** Forgets this thread's names; the counts are every thread's and stay. */
  clear (): void {
    this.names.clear()
  }
}
