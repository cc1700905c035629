/**
 * The usage ledger in Redis: one hash per client per day (`:usage:<day>`), written by the
 * decision's own script. Refusals answered here without Redis (the deny cache, a cached
 * ban) are added within a second; reads flush them first.
 */
import { Cluster, Command } from 'ioredis'
import { heaviest, type UsageRow, type UsageTotal } from '../usage.js'
import { ignoreReply, type RedisClient, type WriteCork } from './client.js'
import { escapeTag, type KeyLayout } from './keys.js'

/** How soon refusals answered locally reach the Redis ledger. */
const LEDGER_FLUSH_MS = 1000

export class RedisLedger {
  /** Ledger lines' refusals answered here, not yet added in Redis: count and the line's TTL. */
  private readonly unrecorded = new Map<string, [number, number]>()
  private ledgerFlush: NodeJS.Timeout | undefined

  constructor (private readonly client: RedisClient, private readonly layout: KeyLayout, private readonly cork: WriteCork) {}

  /** Refusals answered here (deny cache, a cached ban): added to the ledger within a second. */
  refusedHere (line: string, ttlMs: number): void {
    const pending = this.unrecorded.get(line)
    if (pending !== undefined) pending[0]++
    else this.unrecorded.set(line, [1, ttlMs])
    if (this.ledgerFlush === undefined) {
      this.ledgerFlush = setTimeout(() => this.flush(), LEDGER_FLUSH_MS)
      this.ledgerFlush.unref()
    }
  }

  flush (): void {
    this.ledgerFlush = undefined
    this.cork.cork()
    // A flush that fails (Redis away) loses those refusals' count; their requests were answered.
    for (const [line, [count, ttlMs]] of this.unrecorded) {
      this.client.sendCommand(new Command('hincrby', [line, 'refused', String(count)], {}, ignoreReply))
      this.client.sendCommand(new Command('pexpire', [line, String(ttlMs)], {}, ignoreReply))
    }
    this.unrecorded.clear()
  }

  async usage (client: string, days: readonly string[]): Promise<UsageRow[]> {
    this.flush()
    const c = escapeTag(client)
    const lines = await Promise.all(days.map(day => this.client.hmget(this.layout.usageKey(c, day), 'admitted', 'refused', 'cost')))
    return days.map((day, i) => ({ day, admitted: Number(lines[i]![0] ?? 0), refused: Number(lines[i]![1] ?? 0), cost: Number(lines[i]![2] ?? 0) }))
  }

  /** The ledger's lines of these days, found by SCAN on every master: an admin's question, never the hot path's. */
  async topUsage (days: readonly string[], limit: number): Promise<UsageTotal[]> {
    this.flush()
    const wanted = new Set(days)
    const nodes = this.client instanceof Cluster ? this.client.nodes('master') : [this.client]
    const lines: Array<[string, number, number, number]> = []
    for (const node of nodes) {
      let cursor = '0'
      do {
        const [next, keys] = await node.scan(cursor, 'MATCH', this.layout.usagePattern, 'COUNT', 1000)
        cursor = next
        for (const key of keys) {
          const line = this.layout.lineOf(key)
          if (line === undefined || !wanted.has(line[1])) continue
          const [admitted, refused, cost] = await node.hmget(key, 'admitted', 'refused', 'cost')
          lines.push([line[0], Number(admitted ?? 0), Number(refused ?? 0), Number(cost ?? 0)])
        }
      } while (cursor !== '0')
    }
    return heaviest(lines, limit)
  }

  /** Stops the flush timer; what is pending is written if Redis is there to take it. */
  close (): void {
    if (this.ledgerFlush === undefined) return
    clearTimeout(this.ledgerFlush)
    if (this.client.status === 'ready') this.flush()
  }
}
