/**
 * The embedded store: the algorithms' state (one number per key for the buckets, two or
 * three for the windows) in a bounded LRU. A flood of distinct clients evicts the least
 * recently seen, so memory stays under MEMORY_STORE_MAX_KEYS entries; a key whose quota is
 * back in full expires, since a full quota and an absent key mean the same thing.
 */
import { LRUCache } from 'lru-cache'
import type { Clock } from '../clock.js'
import { bannedDecision, type Decision } from '../limiter/decision.js'
import type { Policy } from '../limiter/policy.js'
import { decide, type Outcome, type State } from '../limiter/algorithms/index.js'
import { localKey, type BanSettings, type ClientState, type Store } from './types.js'

/** How often idle (refilled) keys are swept out, besides being dropped when touched. */
export const DEFAULT_PURGE_INTERVAL_MS = 30_000

/** An entry lives until its quota is full again; at least 1 ms (0 would mean "forever"). */
function ttlOf (d: Outcome): number {
  return Math.max(1, Math.ceil(d.resetMs))
}

export interface MemoryStoreOptions {
  maxKeys: number
  clock: Clock
  purgeIntervalMs?: number
  bans?: BanSettings
}

export class MemoryStore implements Store {
  readonly kind = 'memory'
  private readonly cache: LRUCache<string, State>
  private readonly clock: Clock
  private readonly timer: NodeJS.Timeout | undefined
  private readonly bans: BanSettings | undefined

  constructor (opts: MemoryStoreOptions) {
    this.clock = opts.clock
    this.bans = opts.bans
    this.cache = new LRUCache<string, State>({
      max: opts.maxKeys,
      // Entries expire when their quota is full again; TTLs run on the injected clock.
      ttlAutopurge: false,
      perf: this.clock,
      ttlResolution: 0,
      // A stale entry reads as a full quota anyway (every state carries its own time), and
      // the set() that follows overwrites it. Deleting it on read would be worse than
      // useless: lru-cache deletes its last entry by clearing every preallocated slot
      // (O(max)), which with one busy client cost ~2 ms per request (profiled). The
      // periodic purgeStale() drops idle entries instead.
      allowStale: true,
      noDeleteOnStaleGet: true
    })
    const every = opts.purgeIntervalMs ?? DEFAULT_PURGE_INTERVAL_MS
    if (every > 0) {
      this.timer = setInterval(() => this.cache.purgeStale(), every)
      this.timer.unref()
    }
  }

  consume (client: string, policies: readonly Policy[], cost: number, subjects?: readonly string[]): Decision[] {
    const now = this.clock.now()
    // A ban (RATE_LIMIT_BAN_AFTER, or the admin API's) comes before any limit.
    const until = this.cache.get('ban|' + client)
    if (typeof until === 'number' && until > now) return bannedDecision(until - now)
    const n = policies.length
    if (n === 1) {
      // The common case (one limit) without the arrays.
      const policy = policies[0]!
      const key = localKey(policy, subjects === undefined ? client : subjects[0]!)
      const d = decide(policy, this.cache.get(key), now, cost)
      if (d.allowed || d.repair) this.cache.set(key, d.state, { ttl: ttlOf(d) })
      else if (!policy.dryRun && this.bans !== undefined) this.refused(client, now)
      return [d]
    }
    const keys: string[] = new Array(n)
    const out: Outcome[] = new Array(n)
    let admitted = true
    for (let i = 0; i < n; i++) {
      const policy = policies[i]!
      keys[i] = localKey(policy, subjects === undefined ? client : subjects[i]!)
      const d = decide(policy, this.cache.get(keys[i]!), now, cost)
      out[i] = d
      if (!d.allowed && !policy.dryRun) admitted = false
    }
    for (let i = 0; i < n; i++) {
      const d = out[i]!
      if ((admitted && d.allowed) || d.repair) this.cache.set(keys[i]!, d.state, { ttl: ttlOf(d) })
    }
    if (!admitted && this.bans !== undefined) this.refused(client, now)
    return out
  }

  /** Counts a refusal towards a ban; bans the client at the threshold. */
  private refused (client: string, now: number): void {
    const { after, windowMs, durationMs } = this.bans!
    const key = 'ban-count|' + client
    const v = this.cache.get(key)
    let start = now
    let count = 1
    if (typeof v === 'object' && now < v[0]! + windowMs) {
      start = v[0]!
      count = v[1]! + 1
    }
    if (count >= after) {
      this.cache.set('ban|' + client, now + durationMs, { ttl: durationMs })
      // Overwritten rather than deleted (see allowStale above): the count starts again.
      this.cache.set(key, [0, 0], { ttl: 1 })
    } else {
      this.cache.set(key, [start, count], { ttl: Math.max(1, Math.ceil(start + windowMs - now)) })
    }
  }

  inspect (client: string, policies: readonly Policy[]): ClientState {
    const now = this.clock.now()
    const until = this.peek('ban|' + client)
    const count = this.peek('ban-count|' + client)
    return {
      limits: policies.map(policy => {
        const state = this.peek(localKey(policy, client))
        // Cost 0: what the client has left, without taking anything.
        const d = decide(policy, state, now, 0)
        return { policy: policy.name, algorithm: policy.algorithm, remaining: d.remaining, resetMs: Math.max(0, Math.ceil(d.resetMs)), state }
      }),
      bannedMs: typeof until === 'number' && until > now ? Math.ceil(until - now) : 0,
      refusals: typeof count === 'object' && this.bans !== undefined && now < count[0]! + this.bans.windowMs ? count[1]! : 0
    }
  }

  reset (client: string, policies: readonly Policy[]): void {
    for (const policy of policies) if (!policy.shared) this.cache.delete(localKey(policy, client))
    this.cache.delete('ban-count|' + client)
  }

  ban (client: string, ms: number): void {
    this.cache.set('ban|' + client, this.clock.now() + ms, { ttl: ms })
  }

  unban (client: string): void {
    this.cache.delete('ban|' + client)
    this.cache.delete('ban-count|' + client)
  }

  /** The stored state of a key (tests and inspection). */
  peek (key: string): State | undefined {
    return this.cache.get(key, { updateAgeOnGet: false })
  }

  size (): number {
    return this.cache.size
  }

  ready (): boolean {
    return true
  }

  mode (): string {
    return 'memory'
  }

  async close (): Promise<void> {
    if (this.timer) clearInterval(this.timer)
    this.cache.clear()
  }
}
