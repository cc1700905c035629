/**
 * In-flight slots on Redis: each is a lease in a sorted set, taken by the decision's own
 * script. This instance holds the leases of its requests in progress, renews them while the
 * requests run (a request outliving its lease keeps its slots) and gives them back when
 * they end; a lease of an instance that died expires within CONCURRENCY_LEASE_MS.
 */
import { Command } from 'ioredis'
import { ignoreReply, type RedisClient, type WriteCork } from './client.js'
import { RENEW_LUA } from './admin-scripts.js'

export class Leases {
  /** Lease id → its keys (renewed until released). */
  private readonly held = new Map<string, string[]>()
  private renewer: NodeJS.Timeout | undefined
  private readonly leaseArg: string

  constructor (private readonly client: RedisClient, private readonly cork: WriteCork, private readonly leaseMs: number) {
    this.leaseArg = String(leaseMs)
    client.defineCommand('rlRenew', { lua: RENEW_LUA })
  }

  /** The decision took these slots under `lease`: held, and renewed, until released. */
  hold (lease: string, keys: string[]): void {
    this.held.set(lease, keys)
    if (this.renewer === undefined) {
      // A request outliving its lease keeps its slots: renewed three times per lease.
      this.renewer = setInterval(() => this.renew(), Math.max(100, Math.floor(this.leaseMs / 3)))
      this.renewer.unref()
    }
  }

  private renew (): void {
    const renew = (this.client as unknown as { rlRenew: (n: number, ...a: string[]) => Promise<number> }).rlRenew
    // A renewal that fails (Redis away) is retried at the next tick; the lease covers the gap.
    for (const [lease, keys] of this.held) renew.call(this.client, keys.length, ...keys, lease, this.leaseArg).catch(() => {})
  }

  /**
   * Gives back a lease's slots; one this instance does not hold is ignored. One ZREM per
   * slot, written with the turn's other commands (WriteCork); nothing waits for the answer.
   * A release that fails (Redis away) leaves the slot to its lease's expiry.
   */
  release (lease: string): void {
    const keys = this.held.get(lease)
    if (keys === undefined) return
    this.held.delete(lease)
    this.cork.cork()
    for (const key of keys) this.client.sendCommand(new Command('zrem', [key, lease], {}, ignoreReply))
  }

  close (): void {
    clearInterval(this.renewer)
    this.held.clear()
  }
}
