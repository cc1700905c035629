/**
 * Refusals are logged aggregated: per interval, one line per client (the identity key:
 * API keys as digests, never in clear) with its count and the limits it hit, for at most
 * MAX_LINES clients, then one summary line. A flood of refusals, from one client or a
 * million, is a bounded number of lines per interval.
 */
import type { FastifyBaseLogger } from 'fastify'

/** Client lines per interval; the rest are summed up in one line. */
export const MAX_LINES = 20
/** Distinct clients counted per interval; beyond, refusals are only totalled. */
export const MAX_CLIENTS = 10_000

interface Entry { count: number, policies: Set<string>, dryRun: boolean }

export class ViolationLog {
  private entries = new Map<string, Entry>()
  private total = 0
  private untracked = 0
  private readonly timer: NodeJS.Timeout

  constructor (private readonly log: FastifyBaseLogger, private readonly intervalMs: number) {
    this.timer = setInterval(() => this.flush(), intervalMs)
    this.timer.unref()
  }

  /** One refusal (or, in dry run, one would-be refusal). */
  record (client: string, policy: string, dryRun: boolean): void {
    this.total++
    let e = this.entries.get(client)
    if (e === undefined) {
      if (this.entries.size >= MAX_CLIENTS) {
        this.untracked++
        return
      }
      e = { count: 0, policies: new Set(), dryRun }
      this.entries.set(client, e)
    }
    e.count++
    e.policies.add(policy)
  }

  /** Writes the interval's lines and starts a new interval. */
  flush (): void {
    if (this.total === 0) return
    const sorted = [...this.entries].sort((a, b) => b[1].count - a[1].count)
    for (const [client, e] of sorted.slice(0, MAX_LINES)) {
      this.log.info({ client, count: e.count, policies: [...e.policies], dryRun: e.dryRun, intervalMs: this.intervalMs }, e.dryRun ? 'dry run: requests over their limit let through' : 'requests refused by rate limits')
    }
    if (sorted.length > MAX_LINES || this.untracked > 0) {
      this.log.info({ clients: sorted.length + (this.untracked > 0 ? 1 : 0), refusals: this.total, clientsNotListed: sorted.length - Math.min(sorted.length, MAX_LINES), refusalsOfClientsNotCounted: this.untracked, intervalMs: this.intervalMs }, 'rate-limit refusals: summary of the interval')
    }
    this.entries = new Map()
    this.total = 0
    this.untracked = 0
  }

  close (): void {
    clearInterval(this.timer)
    this.flush()
  }
}
