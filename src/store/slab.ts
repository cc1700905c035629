/**
 * A bounded LRU of limiter states in typed arrays: one Map from key to slot, and per slot
 * up to three numbers, an expiry and the LRU links, each in a column of its own. No object
 * per entry: a tracked client costs its key string, its Map entry and 33 bytes of slots
 * (49 for a window's state): ~103 bytes in all at 1M clients, where lru-cache cost ~200. nginx's
 * `limit_req` zone does the same in C with 64 bytes per client.
 *
 * An entry that has expired is still returned until the sweep (`purge`) or eviction drops
 * it: every state carries its own time, so a stale state decides exactly as an absent one.
 */
import type { State } from '../algorithms/index.js'

/** Slots allocated at first; the columns double from there up to the bound. */
const INITIAL_SLOTS = 1024
const NONE = -1

/** What the memory store needs of a table of states: the slab, or a shared zone (shared/zone.ts). */
export interface StateTable {
  readonly size: number
  get (key: string): State | undefined
  peek (key: string): State | undefined
  set (key: string, state: State, expiresAt: number): void
  delete (key: string): void
  purge (now: number): void
  clear (): void
  /** Holds `keys` until `unlock`: their reads and writes are one step for every thread. */
  lock (keys: readonly string[]): void
  unlock (): void
}

export class Slab implements StateTable {
  private readonly max: number
  private readonly index = new Map<string, number>()
  private keys: string[] = []
  /** How many numbers the state in a slot has: 1 (a TAT), 2 or 3 (a window). */
  private arity = new Uint8Array(0)
  private a = new Float64Array(0)
  /** Allocated only once a window state (two or three numbers) is stored. */
  private b: Float64Array | undefined
  private c: Float64Array | undefined
  /** When the state means a full limit again (epoch ms), for the sweep. */
  private expires = new Float64Array(0)
  private prev = new Int32Array(0)
  private next = new Int32Array(0)
  /** Most and least recently used; free slots are chained through `next`. */
  private head = NONE
  private tail = NONE
  private free = NONE
  /** Slots handed out so far (the free chain holds the released ones below it). */
  private used = 0

  constructor (max: number) {
    this.max = max
  }

  get size (): number {
    return this.index.size
  }

  /** One thread only: nothing to hold. */
  lock (_keys: readonly string[]): void {}
  unlock (): void {}

  /** The state stored under `key`, marking it most recently used; undefined when absent. */
  get (key: string): State | undefined {
    const slot = this.index.get(key)
    if (slot === undefined) return undefined
    if (slot !== this.head) {
      this.unlink(slot)
      this.pushFront(slot)
    }
    return this.read(slot)
  }

  /** The state stored under `key`, without touching its recency. */
  peek (key: string): State | undefined {
    const slot = this.index.get(key)
    return slot === undefined ? undefined : this.read(slot)
  }

  /** Stores `state` under `key` until `expiresAt`, evicting the least recently used when full. */
  set (key: string, state: State, expiresAt: number): void {
    let slot = this.index.get(key)
    if (slot === undefined) {
      slot = this.allocate()
      // A key built by concatenation is a rope of string pieces (~110 bytes for
      // `default|ip:10.1.2.3`); the Map keeps what it is given, so it gets a flat copy
      // (~40 bytes). JSON's round trip is exact for every string and costs ~40 ns, once
      // per new client.
      const flat = JSON.parse(JSON.stringify(key)) as string
      this.keys[slot] = flat
      this.index.set(flat, slot)
      this.pushFront(slot)
    } else if (slot !== this.head) {
      this.unlink(slot)
      this.pushFront(slot)
    }
    this.write(slot, state)
    this.expires[slot] = expiresAt
  }

  delete (key: string): void {
    const slot = this.index.get(key)
    if (slot !== undefined) this.release(slot)
  }

  /** Drops every entry expired at `now`. */
  purge (now: number): void {
    let slot = this.tail
    while (slot !== NONE) {
      const before = this.prev[slot]!
      if (this.expires[slot]! <= now) this.release(slot)
      slot = before
    }
  }

  clear (): void {
    this.index.clear()
    this.keys = []
    this.head = this.tail = this.free = NONE
    this.used = 0
  }

  private read (slot: number): State {
    const n = this.arity[slot]
    if (n === 1) return this.a[slot]!
    if (n === 2) return [this.a[slot]!, this.b![slot]!]
    return [this.a[slot]!, this.b![slot]!, this.c![slot]!]
  }

  private write (slot: number, state: State): void {
    if (typeof state === 'number') {
      this.arity[slot] = 1
      this.a[slot] = state
      return
    }
    this.arity[slot] = state.length
    this.a[slot] = state[0]!
    this.b ??= new Float64Array(this.a.length)
    this.b[slot] = state[1]!
    if (state.length === 3) {
      this.c ??= new Float64Array(this.a.length)
      this.c[slot] = state[2]!
    }
  }

  private allocate (): number {
    if (this.free !== NONE) {
      const slot = this.free
      this.free = this.next[slot]!
      return slot
    }
    if (this.used < this.max) {
      if (this.used === this.a.length) this.grow()
      return this.used++
    }
    // Full: the least recently used entry makes room.
    const slot = this.tail
    this.index.delete(this.keys[slot]!)
    this.unlink(slot)
    return slot
  }

  private release (slot: number): void {
    this.index.delete(this.keys[slot]!)
    this.keys[slot] = ''
    this.unlink(slot)
    this.next[slot] = this.free
    this.free = slot
  }

  private grow (): void {
    const size = Math.min(this.max, Math.max(INITIAL_SLOTS, this.a.length * 2))
    this.arity = extend(this.arity, new Uint8Array(size))
    this.a = extend(this.a, new Float64Array(size))
    if (this.b) this.b = extend(this.b, new Float64Array(size))
    if (this.c) this.c = extend(this.c, new Float64Array(size))
    this.expires = extend(this.expires, new Float64Array(size))
    this.prev = extend(this.prev, new Int32Array(size))
    this.next = extend(this.next, new Int32Array(size))
  }

  private unlink (slot: number): void {
    const p = this.prev[slot]!
    const n = this.next[slot]!
    if (p === NONE) this.head = n
    else this.next[p] = n
    if (n === NONE) this.tail = p
    else this.prev[n] = p
  }

  private pushFront (slot: number): void {
    this.prev[slot] = NONE
    this.next[slot] = this.head
    if (this.head !== NONE) this.prev[this.head] = slot
    else this.tail = slot
    this.head = slot
  }
}

function extend<T extends Float64Array | Int32Array | Uint8Array> (from: T, to: T): T {
  to.set(from as never)
  return to
}
