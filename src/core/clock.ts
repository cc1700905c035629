/**
 * Time source. Everything that depends on the passage of time takes a Clock so tests can
 * move time by hand instead of sleeping (as envoy's TimeSource).
 */
export interface Clock {
  /** Milliseconds since the Unix epoch (may be fractional). */
  now(): number
}

export const systemClock: Clock = { now: Date.now }

/** A clock moved only by hand, for tests and simulations. */
export class ManualClock implements Clock {
  constructor (private t = 1_700_000_000_000) {}
  now (): number { return this.t }
  advance (ms: number): void { this.t += ms }
  set (ms: number): void { this.t = ms }
}
