/**
 * The clients refused most in the last minutes, in bounded memory: one Space-Saving
 * summary (Metwally et al.) of CAPACITY counters per minute, the last MINUTES kept. A
 * client in the true top is always listed; a count may be over-estimated by at most its
 * `error` (the count of the counter it took over).
 */
import type { Clock } from '../core/clock.js'

export const CAPACITY = 500
export const MINUTES = 5
const MINUTE_MS = 60_000

interface Counter { count: number, error: number }

export interface Offender {
  client: string
  /** Refusals counted (an upper bound: true count ≥ count - error). */
  count: number
  error: number
}

export class TopOffenders {
  private slots: Array<{ minute: number, counters: Map<string, Counter> }> = []

  constructor (private readonly clock: Clock, private readonly capacity = CAPACITY) {}

  record (client: string): void {
    const minute = Math.floor(this.clock.now() / MINUTE_MS)
    let slot = this.slots[this.slots.length - 1]
    if (slot === undefined || slot.minute !== minute) {
      slot = { minute, counters: new Map() }
      this.slots.push(slot)
      if (this.slots.length > MINUTES) this.slots.shift()
    }
    const counters = slot.counters
    const c = counters.get(client)
    if (c !== undefined) {
      c.count++
      return
    }
    if (counters.size < this.capacity) {
      counters.set(client, { count: 1, error: 0 })
      return
    }
    // Full: the new client takes over the smallest counter, inheriting its count as error.
    let minKey = ''
    let min: Counter | undefined
    for (const [k, v] of counters) {
      if (min === undefined || v.count < min.count) {
        min = v
        minKey = k
      }
    }
    counters.delete(minKey)
    counters.set(client, { count: min!.count + 1, error: min!.count })
  }

  /** The `n` clients refused most over the last `minutes` (at most MINUTES). */
  top (n: number, minutes = MINUTES): Offender[] {
    const since = Math.floor(this.clock.now() / MINUTE_MS) - minutes + 1
    const sum = new Map<string, Counter>()
    for (const slot of this.slots) {
      if (slot.minute < since) continue
      for (const [client, c] of slot.counters) {
        const s = sum.get(client)
        if (s === undefined) sum.set(client, { count: c.count, error: c.error })
        else {
          s.count += c.count
          s.error += c.error
        }
      }
    }
    return [...sum].map(([client, c]) => ({ client, count: c.count, error: c.error }))
      .sort((a, b) => b.count - a.count).slice(0, n)
  }

  /**
   * Refusals per second of the client refused most over the last minute: for each client,
   * this minute's count plus the last minute's weighted by the part of it still inside the
   * sliding minute (the sliding-window estimate). 0 when nobody was refused.
   * gateway_top_client_refusals_per_second, the gauge the refusal alert watches.
   */
  topRate (): number {
    const now = this.clock.now()
    const minute = Math.floor(now / MINUTE_MS)
    const weight = 1 - (now - minute * MINUTE_MS) / MINUTE_MS
    let current: Map<string, Counter> | undefined
    let previous: Map<string, Counter> | undefined
    for (const slot of this.slots) {
      if (slot.minute === minute) current = slot.counters
      else if (slot.minute === minute - 1) previous = slot.counters
    }
    let max = 0
    if (current !== undefined) {
      for (const [client, c] of current) {
        const n = c.count + (previous?.get(client)?.count ?? 0) * weight
        if (n > max) max = n
      }
    }
    if (previous !== undefined) {
      for (const [client, c] of previous) {
        if (current?.has(client) === true) continue
        if (c.count * weight > max) max = c.count * weight
      }
    }
    return max / 60
  }
}

/**
 * Several summaries' offenders as one list (worker threads, each counting its own
 * requests): a client's counts and errors added up, the `n` largest. Exact as a merge of
 * Space-Saving summaries: the true count stays within [count - error, count].
 */
export function mergeOffenders (lists: ReadonlyArray<readonly Offender[]>, n: number): Offender[] {
  const sum = new Map<string, Offender>()
  for (const list of lists) {
    for (const o of list) {
      const s = sum.get(o.client)
      if (s === undefined) sum.set(o.client, { ...o })
      else {
        s.count += o.count
        s.error += o.error
      }
    }
  }
  return [...sum.values()].sort((a, b) => b.count - a.count).slice(0, n)
}
