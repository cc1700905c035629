/**
 * A table of limiter states in one SharedArrayBuffer, for worker threads deciding against
 * one memory store (nginx's `limit_req` zone, Envoy's shared local bucket). The same
 * operations as the slab (slab.ts), plus `lock(keys)`: a decision holds the buckets of
 * all its keys, in ascending order (no deadlock), while it reads and writes them, so
 * limits stay exact however many threads decide at once.
 *
 * Layout, all in the buffer: a header (live count, the hash seed), then per bucket a lock
 * line of 64 bytes (owner, waiters, recency counter; padded so threads locking
 * neighbouring buckets do not share a cache line), then the records, WAYS per bucket,
 * RECORD_BYTES each: one word holding the state's arity (0: empty) and its last use, the
 * key's 96-bit hash, and four float64s (up to three numbers of state and the expiry). A key lives only in its
 * bucket; a full bucket gives its least recently used record to a new key, so the table
 * keeps the most recent ~MEMORY_STORE_MAX_KEYS clients as the slab does (per bucket rather
 * than over the whole table).
 *
 * Keys are stored as their hash only: two keys with one hash would share a state. The hash
 * is seeded with 128 random bits per zone, so a client cannot pick a key colliding with
 * another's without knowing the seed.
 */
import { randomFillSync } from 'node:crypto'
import { threadId } from 'node:worker_threads'
import type { State } from '../../algorithms/index.js'
import type { StateTable } from '../slab.js'

/** Records per bucket. */
export const WAYS = 16
/**
 * Bytes per record: 4 int32 (arity and last use, hash ×3) and 4 float64. 48, where a 128-bit
 * hash and a word of its own for the last use made 56: at a million clients that was 66.6
 * bytes per client tracked (a bucket of 16 gives up a record before the whole table is
 * full), over nginx's 64; 48 makes it 57.6 (bench/RESULTS-workers.md).
 */
export const RECORD_BYTES = 48
const RECORD_WORDS = RECORD_BYTES / 4
const RECORD_FLOATS = RECORD_BYTES / 8
/** The record's first float64, in float64s from its start (after 4 int32s). */
const FLOAT_AT = 2
/** The first word: the arity in its top 2 bits, the last use (the bucket's counter) below. */
const ARITY_SHIFT = 30
const USE_MASK = (1 << ARITY_SHIFT) - 1
/** The expiry's place among a record's float64s (after the state's three). */
const FAT_EXPIRES = FLOAT_AT + 3
/** One cache line per bucket lock (false sharing between threads otherwise). */
const LOCK_BYTES = 64
const LOCK_WORDS = LOCK_BYTES / 4
const HEADER_BYTES = 64
/** Header words: live records, then the 4 words of the hash seed. */
const LIVE = 0
const SEED = 1
/** Lock line words. */
const OWNER = 0
const WAITERS = 1
const RECENCY = 2
/** Tries of a taken lock before sleeping on it: a hold is well under a microsecond. */
const SPINS = 64
/** Most keys one decision locks at once (policies plus their shared ones); grows if needed. */
const INITIAL_HELD = 8

/** This thread's mark in a lock it holds (never 0, which means free). */
const ME = threadId + 1

/** The bytes a zone of `maxKeys` records takes. */
export function zoneBytes (maxKeys: number): number {
  const buckets = Math.max(1, Math.ceil(maxKeys / WAYS))
  return HEADER_BYTES + buckets * (LOCK_BYTES + WAYS * RECORD_BYTES)
}

export class SharedZone implements StateTable {
  readonly buffer: SharedArrayBuffer
  readonly buckets: number
  private readonly header: Int32Array
  private readonly locks: Int32Array
  private readonly words: Int32Array
  private readonly floats: Float64Array
  private readonly s1: number
  private readonly s2: number
  private readonly s3: number
  private readonly s4: number
  /** The key being worked on: its hash (h1..h3). */
  private h1 = 0
  private h2 = 0
  private h3 = 0
  /** The keys a decision holds (`lock`), their hashes and the buckets locked, ascending. */
  private heldKeys: readonly string[] | undefined
  private heldCount = 0
  private heldHashes = new Int32Array(INITIAL_HELD * 3)
  private heldBuckets = new Int32Array(INITIAL_HELD)
  private lockedCount = 0

  /**
   * A new zone for `maxKeys` records, or (given `buffer`, made by another thread's zone)
   * the same zone seen from this thread.
   */
  constructor (maxKeys: number, buffer?: SharedArrayBuffer) {
    this.buffer = buffer ?? new SharedArrayBuffer(zoneBytes(maxKeys))
    this.buckets = Math.floor((this.buffer.byteLength - HEADER_BYTES) / (LOCK_BYTES + WAYS * RECORD_BYTES))
    this.header = new Int32Array(this.buffer, 0, HEADER_BYTES / 4)
    this.locks = new Int32Array(this.buffer, HEADER_BYTES, this.buckets * LOCK_WORDS)
    const records = HEADER_BYTES + this.buckets * LOCK_BYTES
    this.words = new Int32Array(this.buffer, records, this.buckets * WAYS * RECORD_WORDS)
    this.floats = new Float64Array(this.buffer, records, this.buckets * WAYS * RECORD_FLOATS)
    if (buffer === undefined) randomFillSync(this.header.subarray(SEED, SEED + 4))
    this.s1 = this.header[SEED]!
    this.s2 = this.header[SEED + 1]!
    this.s3 = this.header[SEED + 2]!
    this.s4 = this.header[SEED + 3]!
  }

  /** Records in use. */
  get size (): number {
    return Atomics.load(this.header, LIVE)
  }

  /**
   * Locks the buckets of `keys` (a decision's: all read and written before `unlock`), in
   * ascending order. Calls between lock and unlock take no other lock for these keys.
   */
  lock (keys: readonly string[]): void {
    const n = keys.length
    if (n > this.heldBuckets.length) {
      this.heldBuckets = new Int32Array(n)
      this.heldHashes = new Int32Array(n * 3)
    }
    let locked = 0
    for (let i = 0; i < n; i++) {
      const b = this.hash(keys[i]!)
      const at = i * 3
      this.heldHashes[at] = this.h1
      this.heldHashes[at + 1] = this.h2
      this.heldHashes[at + 2] = this.h3
      // Insert b into the ascending list of buckets, once.
      let j = locked
      while (j > 0 && this.heldBuckets[j - 1]! > b) j--
      if (j > 0 && this.heldBuckets[j - 1] === b) continue
      this.heldBuckets.copyWithin(j + 1, j, locked)
      this.heldBuckets[j] = b
      locked++
    }
    for (let i = 0; i < locked; i++) this.acquire(this.heldBuckets[i]!)
    this.heldKeys = keys
    this.heldCount = n
    this.lockedCount = locked
  }

  unlock (): void {
    for (let i = this.lockedCount - 1; i >= 0; i--) this.release(this.heldBuckets[i]!)
    this.heldKeys = undefined
    this.heldCount = 0
    this.lockedCount = 0
  }

  /** The state stored under `key`, marking it most recently used; undefined when absent. */
  get (key: string): State | undefined {
    const b = this.enter(key)
    const r = this.find(b)
    let state: State | undefined
    if (r !== -1) {
      state = this.read(r)
      this.touch(b, r, this.words[r * RECORD_WORDS]! >>> ARITY_SHIFT)
    }
    this.leave(b)
    return state
  }

  /** The state stored under `key`, without touching its recency. */
  peek (key: string): State | undefined {
    const b = this.enter(key)
    const r = this.find(b)
    const state = r === -1 ? undefined : this.read(r)
    this.leave(b)
    return state
  }

  /** Stores `state` under `key` until `expiresAt`; a full bucket gives up its least recently used. */
  set (key: string, state: State, expiresAt: number): void {
    const b = this.enter(key)
    let r = this.find(b)
    if (r === -1) r = this.claim(b)
    const f = r * RECORD_FLOATS + FLOAT_AT
    if (typeof state === 'number') {
      this.floats[f] = state
    } else {
      this.floats[f] = state[0]!
      this.floats[f + 1] = state[1]!
      if (state.length === 3) this.floats[f + 2] = state[2]!
    }
    this.floats[f + 3] = expiresAt
    this.touch(b, r, typeof state === 'number' ? 1 : state.length)
    this.leave(b)
  }

  delete (key: string): void {
    const b = this.enter(key)
    const r = this.find(b)
    if (r !== -1) this.drop(r)
    this.leave(b)
  }

  /** Drops every record expired at `now` (one bucket locked at a time). */
  purge (now: number): void {
    for (let b = 0; b < this.buckets; b++) {
      this.acquire(b)
      for (let r = b * WAYS; r < (b + 1) * WAYS; r++) {
        if (this.words[r * RECORD_WORDS] !== 0 && this.floats[r * RECORD_FLOATS + FAT_EXPIRES]! <= now) this.drop(r)
      }
      this.release(b)
    }
  }

  /** Empties the zone (every thread sees it empty). */
  clear (): void {
    for (let b = 0; b < this.buckets; b++) {
      this.acquire(b)
      for (let r = b * WAYS; r < (b + 1) * WAYS; r++) if (this.words[r * RECORD_WORDS] !== 0) this.drop(r)
      this.release(b)
    }
  }

  /**
   * Frees the locks a thread held when it died (its id, as `threadId`), so the others go
   * on; what it was writing under them is lost with it, as its requests are.
   */
  releaseHeldBy (thread: number): number {
    let freed = 0
    for (let b = 0; b < this.buckets; b++) {
      const at = b * LOCK_WORDS + OWNER
      if (Atomics.compareExchange(this.locks, at, thread + 1, 0) === thread + 1) {
        freed++
        Atomics.notify(this.locks, at)
      }
    }
    return freed
  }

  /** Hashes `key` into h1..h3 (or takes a held key's hash) and locks its bucket unless held. */
  private enter (key: string): number {
    const keys = this.heldKeys
    if (keys !== undefined) {
      for (let i = 0; i < this.heldCount; i++) {
        if (keys[i] === key) {
          const at = i * 3
          this.h1 = this.heldHashes[at]!
          this.h2 = this.heldHashes[at + 1]!
          this.h3 = this.heldHashes[at + 2]!
          return -1 - ((this.h1 >>> 0) % this.buckets)
        }
      }
    }
    const b = this.hash(key)
    // Another key whose bucket a decision holds: held already (locking it again would wait forever).
    for (let i = 0; i < this.lockedCount; i++) if (this.heldBuckets[i] === b) return -1 - b
    this.acquire(b)
    return b
  }

  /** Unlocks what enter() locked (a held bucket, encoded below 0, stays locked). */
  private leave (b: number): void {
    if (b >= 0) this.release(b)
  }

  /** The record of h1..h3 in bucket `b` (or -1 - b: held), or -1. */
  private find (bucket: number): number {
    const b = bucket < 0 ? -1 - bucket : bucket
    const words = this.words
    for (let r = b * WAYS; r < (b + 1) * WAYS; r++) {
      const w = r * RECORD_WORDS
      if (words[w] !== 0 && words[w + 1] === this.h1 && words[w + 2] === this.h2 && words[w + 3] === this.h3) return r
    }
    return -1
  }

  /** A record for h1..h3 in bucket `b`: an empty one, else the least recently used. */
  private claim (bucket: number): number {
    const b = bucket < 0 ? -1 - bucket : bucket
    const words = this.words
    const now = this.locks[b * LOCK_WORDS + RECENCY]!
    let oldest = -1
    let oldestAge = -1
    for (let r = b * WAYS; r < (b + 1) * WAYS; r++) {
      const w = r * RECORD_WORDS
      if (words[w] === 0) {
        oldest = r
        Atomics.add(this.header, LIVE, 1)
        break
      }
      // Ages wrap with the counter: the difference is what counts.
      const age = (now - words[w]!) & USE_MASK
      if (age > oldestAge) {
        oldest = r
        oldestAge = age
      }
    }
    const w = oldest * RECORD_WORDS
    words[w + 1] = this.h1
    words[w + 2] = this.h2
    words[w + 3] = this.h3
    return oldest
  }

  /** Marks record `r` (of `arity` numbers) as its bucket's most recently used. */
  private touch (bucket: number, r: number, arity: number): void {
    const at = (bucket < 0 ? -1 - bucket : bucket) * LOCK_WORDS + RECENCY
    const t = (this.locks[at]! + 1) & USE_MASK
    this.locks[at] = t
    this.words[r * RECORD_WORDS] = (arity << ARITY_SHIFT) | t
  }

  private drop (r: number): void {
    this.words[r * RECORD_WORDS] = 0
    Atomics.sub(this.header, LIVE, 1)
  }

  private read (r: number): State {
    const n = this.words[r * RECORD_WORDS]! >>> ARITY_SHIFT
    const f = r * RECORD_FLOATS + FLOAT_AT
    if (n === 1) return this.floats[f]!
    if (n === 2) return [this.floats[f]!, this.floats[f + 1]!]
    return [this.floats[f]!, this.floats[f + 1]!, this.floats[f + 2]!]
  }

  /**
   * The key's hash into h1..h3 (96 of cyrb128's 128 bits); returns its bucket. cyrb128 (bryc, public domain),
   * seeded with the zone's random seed. Hand-written on the hot path: for keys such as
   * `default|ip:10.1.2.3` it costs 42 ns, node:crypto's one-shot hash('md5') 830 ns and
   * createHash 1500 ns (Node 20, this 2-core VM, 2026-12-06), where a whole decision is 145.
   */
  private hash (key: string): number {
    let h1 = 1779033703 ^ this.s1
    let h2 = 3144134277 ^ this.s2
    let h3 = 1013904242 ^ this.s3
    let h4 = 2773480762 ^ this.s4
    for (let i = 0; i < key.length; i++) {
      const k = key.charCodeAt(i)
      h1 = h2 ^ Math.imul(h1 ^ k, 597399067)
      h2 = h3 ^ Math.imul(h2 ^ k, 2869860233)
      h3 = h4 ^ Math.imul(h3 ^ k, 951274213)
      h4 = h1 ^ Math.imul(h4 ^ k, 2716044179)
    }
    h1 = Math.imul(h3 ^ (h1 >>> 18), 597399067)
    h2 = Math.imul(h4 ^ (h2 >>> 22), 2869860233)
    h3 = Math.imul(h1 ^ (h3 >>> 17), 951274213)
    h4 = Math.imul(h2 ^ (h4 >>> 19), 2716044179)
    h1 ^= h2 ^ h3 ^ h4
    h2 ^= h1
    h3 ^= h1
    this.h1 = h1 | 0
    this.h2 = h2 | 0
    this.h3 = h3 | 0
    return (this.h1 >>> 0) % this.buckets
  }

  /** Takes bucket `b`'s lock: spins briefly, then sleeps until its holder lets go. */
  private acquire (b: number): void {
    const locks = this.locks
    const at = b * LOCK_WORDS + OWNER
    if (Atomics.compareExchange(locks, at, 0, ME) === 0) return
    for (let i = 0; i < SPINS; i++) {
      if (Atomics.load(locks, at) === 0 && Atomics.compareExchange(locks, at, 0, ME) === 0) return
    }
    const waiters = b * LOCK_WORDS + WAITERS
    Atomics.add(locks, waiters, 1)
    for (;;) {
      const owner = Atomics.load(locks, at)
      if (owner === 0 && Atomics.compareExchange(locks, at, 0, ME) === 0) break
      // Returns at once if the lock changed hands since the load: no wake-up is lost.
      if (owner !== 0) Atomics.wait(locks, at, owner)
    }
    Atomics.sub(locks, waiters, 1)
  }

  private release (b: number): void {
    const at = b * LOCK_WORDS
    Atomics.store(this.locks, at + OWNER, 0)
    if (Atomics.load(this.locks, at + WAITERS) !== 0) Atomics.notify(this.locks, at + OWNER, 1)
  }
}
