/**
 * The store contract: one table of cases that every Store implementation must pass, on an
 * injected clock. Each case is a sequence of requests at given times (ms after the start)
 * against one or more policies; each step states what the decision must be.
 */
import { makePolicy } from '../../src/limiter/policy.js'
import { parseRate } from '../../src/config/parse.js'
import type { Policy } from '../../src/limiter/policy.js'

export interface Expect {
  allowed: boolean
  remaining?: number
  retryAfterMs?: number
  resetMs?: number
}

export interface Step {
  /** Milliseconds since the case started. */
  at: number
  cost?: number
  /** Which of the case's keys this request uses (default: all of them). */
  keys?: number[]
  /** Expected decision per policy, in the order of the case's policies (or of `keys`). */
  expect: Expect[]
}

export interface ContractCase {
  name: string
  policies: Policy[]
  steps: Step[]
}

export const policy = (rate: string, burst: number, name = 'default'): Policy =>
  makePolicy(name, 'token-bucket', { rate: parseRate(rate), burst })

const ok = (remaining: number, extra: Partial<Expect> = {}): Expect => ({ allowed: true, remaining, retryAfterMs: 0, ...extra })
const no = (retryAfterMs: number, extra: Partial<Expect> = {}): Expect => ({ allowed: false, retryAfterMs, ...extra })

export const CONTRACT: ContractCase[] = [
  {
    name: 'a fresh bucket admits the burst at once, then rejects',
    policies: [policy('10/s', 3)],
    steps: [
      { at: 0, expect: [ok(2, { resetMs: 100 })] },
      { at: 0, expect: [ok(1, { resetMs: 200 })] },
      { at: 0, expect: [ok(0, { resetMs: 300 })] },
      { at: 0, expect: [no(100, { remaining: 0, resetMs: 300 })] }
    ]
  },
  {
    name: 'one token comes back per interval',
    policies: [policy('10/s', 3)],
    steps: [
      { at: 0, expect: [ok(2)] }, { at: 0, expect: [ok(1)] }, { at: 0, expect: [ok(0)] },
      { at: 50, expect: [no(50)] },
      { at: 100, expect: [ok(0)] },
      { at: 150, expect: [no(50)] },
      { at: 250, expect: [ok(0)] }
    ]
  },
  {
    name: 'a request exactly on the refill boundary is admitted',
    policies: [policy('10/s', 1)],
    steps: [
      { at: 0, expect: [ok(0)] },
      { at: 100, expect: [ok(0)] },
      { at: 200, expect: [ok(0)] },
      { at: 299, expect: [no(1)] }
    ]
  },
  {
    name: 'rejected requests consume nothing',
    policies: [policy('10/s', 2)],
    steps: [
      { at: 0, expect: [ok(1)] }, { at: 0, expect: [ok(0)] },
      { at: 10, expect: [no(90)] }, { at: 20, expect: [no(80)] }, { at: 30, expect: [no(70)] },
      { at: 40, expect: [no(60)] }, { at: 90, expect: [no(10)] },
      { at: 100, expect: [ok(0)] }
    ]
  },
  {
    name: 'a long idle period refills to the burst, never beyond',
    policies: [policy('10/s', 3)],
    steps: [
      { at: 0, expect: [ok(2)] },
      { at: 60_000, expect: [ok(2, { resetMs: 100 })] },
      { at: 60_000, expect: [ok(1)] }, { at: 60_000, expect: [ok(0)] },
      { at: 60_000, expect: [no(100)] }
    ]
  },
  {
    name: 'a rate that does not divide a second (3/s) waits the full third',
    policies: [policy('3/s', 1)],
    steps: [
      { at: 0, expect: [ok(0)] },
      { at: 333, expect: [no(1000 / 3 - 333)] },
      { at: 334, expect: [ok(0)] }
    ]
  },
  {
    name: 'per-minute, per-hour and per-day rates',
    policies: [policy('60/m', 1, 'm'), policy('2/h', 1, 'h'), policy('24/d', 2, 'd')],
    steps: [
      { at: 0, expect: [ok(0), ok(0), ok(1)] },
      { at: 1_000, keys: [0], expect: [ok(0)] },
      { at: 1_500, keys: [1], expect: [no(1_800_000 - 1_500)] },
      { at: 1_500, keys: [2], expect: [ok(0)] },
      { at: 2_000, keys: [2], expect: [no(3_600_000 - 2_000)] }
    ]
  },
  {
    name: 'a request costing several tokens takes them all or none',
    policies: [policy('10/s', 3)],
    steps: [
      { at: 0, cost: 2, expect: [ok(1, { resetMs: 200 })] },
      { at: 0, cost: 2, expect: [no(100, { remaining: 1 })] },
      { at: 0, cost: 1, expect: [ok(0)] }
    ]
  },
  {
    // Each step after a rejection shows the rejected request took nothing: had it
    // consumed, the next step's remaining (or its admission) would differ.
    name: 'several limits: the request passes only if all pass, and a rejection takes from none',
    policies: [policy('10/s', 3, 'global'), policy('10/s', 2, 'a'), policy('10/s', 2, 'b')],
    steps: [
      { at: 0, keys: [0, 1], expect: [ok(2), ok(1)] },
      { at: 0, keys: [0, 1], expect: [ok(1), ok(0)] },
      { at: 0, keys: [0, 1], expect: [ok(0), no(100)] },
      { at: 0, keys: [0, 2], expect: [ok(0), ok(1)] },
      { at: 0, keys: [0, 2], expect: [no(100), ok(0)] },
      { at: 0, keys: [0, 2], expect: [no(100), ok(0)] },
      { at: 100, keys: [0, 2], expect: [ok(0), ok(1)] }
    ]
  },
  {
    // The same key under a changed (raised) limit: the old limit's long wait is not
    // carried over; the client starts from an empty bucket under the new limit.
    name: 'state left by a stricter limit does not outlive a raised limit',
    policies: [policy('1/h', 1, 'x'), policy('10/s', 2, 'x')],
    steps: [
      { at: 0, keys: [0], expect: [ok(0)] },
      { at: 0, keys: [0], expect: [no(3_600_000)] },
      { at: 0, keys: [1], expect: [no(100, { remaining: 0, resetMs: 200 })] },
      { at: 100, keys: [1], expect: [ok(0, { resetMs: 200 })] },
      { at: 300, keys: [1], expect: [ok(1)] }
    ]
  },
  {
    name: 'independent keys do not share a bucket',
    policies: [policy('1/s', 1, 'a'), policy('1/s', 1, 'b')],
    steps: [
      { at: 0, keys: [0], expect: [ok(0)] },
      { at: 0, keys: [0], expect: [no(1000)] },
      { at: 0, keys: [1], expect: [ok(0)] },
      { at: 0, keys: [1], expect: [no(1000)] }
    ]
  }
]
