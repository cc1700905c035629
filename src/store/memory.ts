/**
 * The embedded store: one number (the token bucket's TAT) per tracked key in a bounded
 * LRU. A flood of distinct clients evicts the least recently seen, so memory stays under
 * MEMORY_STORE_MAX_KEYS entries; a key whose bucket has refilled completely expires, since
 * a full bucket and an absent key mean the same thing.
 */
import { LRUCache } from 'lru-cache'
import type { Clock } from '../clock.js'
import type { Decision } from '../limiter/decision.js'
import type { Policy } from '../limiter/policy.js'
import { tokenBucket, type TokenBucketDecision } from '../limiter/algorithms/token-bucket.js'
import { localKey, type Store } from './types.js'

/** How often idle (refilled) keys are swept out, besides being dropped when touched. */
export const DEFAULT_PURGE_INTERVAL_MS = 30_000

/** An entry lives until its bucket is full again; at least 1 ms (0 would mean "forever"). */
function ttlOf (d: TokenBucketDecision): number {
  return Math.max(1, Math.ceil(d.resetMs))
}

export interface MemoryStoreOptions {
  maxKeys: number
  clock: Clock
  purgeIntervalMs?: number
}

export class MemoryStore implements Store {
  readonly kind = 'memory'
  private readonly cache: LRUCache<string, number>
  private readonly clock: Clock
  private readonly timer: NodeJS.Timeout | undefined

  constructor (opts: MemoryStoreOptions) {
    this.clock = opts.clock
    this.cache = new LRUCache<string, number>({
      max: opts.maxKeys,
      // Entries expire when their bucket is full again; TTLs run on the injected clock.
      ttlAutopurge: false,
      perf: this.clock,
      ttlResolution: 0,
      // A stale entry (a TAT in the past) reads as a full bucket anyway, and the set()
      // that follows overwrites it. Deleting it on read would be worse than useless:
      // lru-cache deletes its last entry by clearing every preallocated slot (O(max)),
      // which with one busy client cost ~2 ms per request (profiled). The periodic
      // purgeStale() drops idle entries instead.
      allowStale: true,
      noDeleteOnStaleGet: true
    })
    const every = opts.purgeIntervalMs ?? DEFAULT_PURGE_INTERVAL_MS
    if (every > 0) {
      this.timer = setInterval(() => this.cache.purgeStale(), every)
      this.timer.unref()
    }
  }

  consume (subject: string, policies: readonly Policy[], cost: number): Decision[] {
    const now = this.clock.now()
    const n = policies.length
    if (n === 1) {
      // The common case (one limit) without the arrays.
      const key = localKey(policies[0]!, subject)
      const d = tokenBucket(this.cache.get(key), policies[0]!, now, cost)
      if (d.allowed || d.repair) this.cache.set(key, d.state, { ttl: ttlOf(d) })
      return [d]
    }
    const keys: string[] = new Array(n)
    const out: TokenBucketDecision[] = new Array(n)
    let allowed = true
    for (let i = 0; i < n; i++) {
      keys[i] = localKey(policies[i]!, subject)
      const d = tokenBucket(this.cache.get(keys[i]!), policies[i]!, now, cost)
      out[i] = d
      if (!d.allowed) allowed = false
    }
    for (let i = 0; i < n; i++) {
      const d = out[i]!
      if (allowed || d.repair) this.cache.set(keys[i]!, d.state, { ttl: ttlOf(d) })
    }
    return out
  }

  /** The stored state of a key (tests and inspection). */
  peek (key: string): number | undefined {
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
