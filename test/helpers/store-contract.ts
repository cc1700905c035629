/**
 * The store contract: one table of cases that every Store implementation must pass, on an
 * injected clock. Each case is a sequence of requests at given times (ms after the start)
 * against one or more policies; each step states what the decision must be.
 */
import { makePolicy } from '../../src/core/policy.js'
import { parseRate } from '../../src/core/rate.js'
import { Calendar } from '../../src/algorithms/calendar.js'
import { makeConcurrencyLimit, type ConcurrencyLimit, type Policy } from '../../src/core/policy.js'
import type { AlgorithmName } from '../../src/core/policy.js'
import type { BanSettings } from '../../src/core/policy.js'

/** Where cases start by default: deliberately not a whole millisecond. */
export const START = 1_795_000_000_123.456
/** A whole UTC day: windows start here (cases with `origin: ALIGNED`). */
export const ALIGNED = 1_795_046_400_000

export interface Expect {
  allowed: boolean
  remaining?: number
  retryAfterMs?: number
  resetMs?: number
  delayMs?: number
  banned?: boolean
  /** Refused by this in-flight limit (its name): one decision, nothing charged. */
  concurrency?: string
}

export interface Step {
  /** Milliseconds since the case started. */
  at: number
  cost?: number
  /** Which of the case's keys this request uses (default: all of them). */
  keys?: number[]
  /** The client (default `client`). */
  client?: string
  /** Per policy used, the subject when not the client's own. */
  subjects?: string[]
  /** Expected decision per policy, in the order of the case's policies (or of `keys`). */
  expect: Expect[]
  /** The request takes a slot in these in-flight limits (indexes into the case's `concurrency`) under `lease`. */
  slots?: { limits: number[], lease: string }
}

/** Instead of a request: settle an earlier charge (Store.settle), per policy used. */
export interface SettleStep {
  at: number
  keys?: number[]
  client?: string
  subjects?: string[]
  settle: { deltas: number[], chargedAt: number }
}

/**
 * Instead of a request: an admin operation on the client (the admin API's), or a look at
 * what the admin API shows of it: its standing (inspect) or its day in the usage ledger.
 */
export interface AdminStep {
  at: number
  client?: string
  admin: 'ban' | 'unban' | 'reset' | 'inspect' | 'usage'
  /** ban: for how long (ms). */
  ms?: number
  /** inspect: remaining per policy, ban time left, refusals counted towards a ban. */
  shows?: { remaining?: number[], bannedMs?: number, refusals?: number }
  /** usage: the client's line for the step's day (UTC). */
  usage?: { admitted: number, refused: number, cost: number }
}

/** Instead of a request: the response of the request holding `release` ended. */
export interface ReleaseStep {
  at: number
  client?: string
  release: string
}

export interface ContractCase {
  name: string
  policies: Policy[]
  steps: Array<Step | SettleStep | ReleaseStep | AdminStep>
  /** In-flight limits the steps' `slots` name. */
  concurrency?: ConcurrencyLimit[]
  /** Absolute time of the case's start (default START). */
  origin?: number
  /** The store is built with bans on. */
  bans?: BanSettings
  /**
   * The gateway's clock minus Redis's (ms): the steps' times and expectations are Redis's,
   * and the gateway reads its own clock this far off. One-clock stores run the case unskewed.
   */
  gatewaySkewMs?: number
  /** Every request is written in the usage ledger, on its day in UTC. */
  ledger?: boolean
}

export const policy = (rate: string, burst: number, name = 'default', algorithm: AlgorithmName = 'token-bucket', extra: { maxDelayMs?: number, dryRun?: boolean } = {}): Policy =>
  makePolicy(name, { rate: parseRate(rate), burst, algorithm, maxDelayMs: extra.maxDelayMs ?? 0, dryRun: extra.dryRun ?? false })

/** A quota: a fixed window over calendar periods (`N/d`, `N/w`, `N/mo`) in a time zone. */
export const quota = (rate: string, zone = 'UTC', name = 'quota', dryRun = false): Policy => {
  const spec = parseRate(rate)
  return makePolicy(name, { rate: spec, burst: spec.count, algorithm: 'fixed-window', maxDelayMs: 0, dryRun, calendar: new Calendar(spec.calendar!, zone) })
}

const HOUR = 3_600_000
const DAY = 24 * HOUR

const ok = (remaining: number, extra: Partial<Expect> = {}): Expect => ({ allowed: true, remaining, retryAfterMs: 0, ...extra })
const no = (retryAfterMs: number, extra: Partial<Expect> = {}): Expect => ({ allowed: false, retryAfterMs, ...extra })
const banned = (retryAfterMs: number): Expect => ({ allowed: false, retryAfterMs, banned: true })
const full = (limit: string): Expect => ({ allowed: false, retryAfterMs: 1000, remaining: 0, concurrency: limit })
const settle = (at: number, deltas: number[], chargedAt: number, extra: Partial<SettleStep> = {}): SettleStep => ({ at, settle: { deltas, chargedAt }, ...extra })

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
    // A refusal that repairs such a state is still a refusal: it counts towards a ban
    // (the memory store's one-limit path once skipped it).
    name: 'bans: a refusal that repairs a stricter limit\'s state counts towards the ban',
    bans: { after: 2, windowMs: 60_000, durationMs: 10_000 },
    policies: [policy('1/h', 1, 'x'), policy('10/s', 2, 'x')],
    steps: [
      { at: 0, keys: [0], expect: [ok(0)] },
      { at: 0, keys: [1], expect: [no(100, { remaining: 0, resetMs: 200 })] },
      { at: 10, keys: [1], expect: [no(90)] },
      { at: 20, keys: [1], expect: [banned(9990)] }
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
  },
  {
    name: 'fixed window: the quota resets at the aligned boundary, so up to twice the quota fits around it',
    origin: ALIGNED,
    policies: [policy('5/s', 99, 'fw', 'fixed-window')],
    steps: [
      { at: 0, expect: [ok(4, { resetMs: 1000 })] },
      { at: 990, expect: [ok(3, { resetMs: 10 })] }, { at: 990, expect: [ok(2)] },
      { at: 995, expect: [ok(1)] }, { at: 999, expect: [ok(0, { resetMs: 1 })] },
      { at: 999, expect: [no(1, { remaining: 0, resetMs: 1 })] },
      { at: 1000, expect: [ok(4, { resetMs: 1000 })] }, { at: 1000, expect: [ok(3)] },
      { at: 1001, expect: [ok(2)] }, { at: 1002, expect: [ok(1)] }, { at: 1003, expect: [ok(0)] },
      { at: 1500, expect: [no(500, { resetMs: 500 })] }
    ]
  },
  {
    name: 'windows of several units (2/5m): a fixed window of five minutes, aligned to the epoch',
    origin: ALIGNED,
    policies: [policy('2/5m', 1, 'fw', 'fixed-window')],
    steps: [
      { at: 0, expect: [ok(1, { resetMs: 300_000 })] },
      { at: 1000, expect: [ok(0, { resetMs: 299_000 })] },
      { at: 240_000, expect: [no(60_000, { remaining: 0 })] },
      { at: 299_999, expect: [no(1)] },
      { at: 300_000, expect: [ok(1, { resetMs: 300_000 })] }
    ]
  },
  {
    name: 'windows of several units (2/5m): a sliding window of five minutes weighs the last one',
    origin: ALIGNED,
    policies: [policy('2/5m', 1, 'sw', 'sliding-window')],
    steps: [
      { at: 0, expect: [ok(1)] },
      { at: 1000, expect: [ok(0)] },
      // Not at the boundary: the last window's 2 weigh 2 there, and 1 only half into the next.
      { at: 299_999, expect: [no(150_001)] },
      // Half into the next window the last one's 2 weigh 1: one more fits, then none.
      { at: 450_000, expect: [ok(0)] },
      { at: 450_000, expect: [{ allowed: false }] }
    ]
  },
  {
    name: 'windows of several units (2/5m): a bucket earns one request back every 150 s',
    policies: [policy('2/5m', 2, 'tb', 'token-bucket')],
    steps: [
      { at: 0, expect: [ok(1, { resetMs: 150_000 })] },
      { at: 0, expect: [ok(0, { resetMs: 300_000 })] },
      { at: 149_000, expect: [no(1000)] },
      { at: 150_000, expect: [ok(0)] }
    ]
  },
  {
    name: 'fixed window: a request costing several takes them all or none',
    origin: ALIGNED,
    policies: [policy('5/m', 1, 'fw', 'fixed-window')],
    steps: [
      { at: 0, cost: 3, expect: [ok(2, { resetMs: 60_000 })] },
      { at: 1000, cost: 3, expect: [no(59_000, { remaining: 2 })] },
      { at: 1000, cost: 2, expect: [ok(0)] }
    ]
  },
  {
    name: 'sliding window: no boundary burst; the previous window weighs by the share still covered',
    origin: ALIGNED,
    policies: [policy('5/s', 99, 'sw', 'sliding-window')],
    steps: [
      { at: 900, expect: [ok(4, { resetMs: 1100 })] }, { at: 900, expect: [ok(3)] }, { at: 900, expect: [ok(2)] },
      { at: 900, expect: [ok(1)] }, { at: 900, expect: [ok(0)] },
      { at: 950, expect: [no(250, { remaining: 0, resetMs: 1050 })] },
      // The boundary: the full previous window still counts.
      { at: 1000, expect: [no(200, { remaining: 0, resetMs: 1000 })] },
      { at: 1100, expect: [no(100)] },
      // 20% of the window has slid by: one request's worth came back.
      { at: 1200, expect: [ok(0, { resetMs: 1800 })] },
      { at: 1200, expect: [no(200)] },
      // Next window: the previous (one request) weighs in full at first, then fades.
      { at: 2000, expect: [ok(3)] },
      { at: 3500, expect: [ok(3)] },
      // Two windows of silence: nothing left.
      { at: 6000, expect: [ok(4)] }
    ]
  },
  {
    name: 'sliding window: a full current window waits for the next one',
    origin: ALIGNED,
    policies: [policy('2/s', 99, 'sw', 'sliding-window')],
    steps: [
      { at: 100, expect: [ok(1)] }, { at: 100, expect: [ok(0)] },
      // Next window at 1000, where 2 × (1 - f) + 1 ≤ 2 needs f ≥ 0.5: at 1500.
      { at: 200, expect: [no(1300, { remaining: 0, resetMs: 1800 })] },
      { at: 1499, expect: [no(1)] },
      { at: 1500, expect: [ok(0)] }
    ]
  },
  {
    name: 'leaky bucket: over the rate, requests are delayed to the leak rate up to the maximum delay, then refused',
    policies: [policy('10/s', 1, 'lb', 'leaky-bucket', { maxDelayMs: 300 })],
    steps: [
      { at: 0, expect: [ok(0, { delayMs: 0, resetMs: 100 })] },
      { at: 0, expect: [ok(0, { delayMs: 100, resetMs: 200 })] },
      { at: 0, expect: [ok(0, { delayMs: 200 })] },
      { at: 0, expect: [ok(0, { delayMs: 300 })] },
      { at: 0, expect: [no(100, { remaining: 0, resetMs: 400, delayMs: 0 })] },
      { at: 50, expect: [no(50)] },
      { at: 100, expect: [ok(0, { delayMs: 300, resetMs: 400 })] },
      { at: 2000, expect: [ok(0, { delayMs: 0 })] }
    ]
  },
  {
    name: 'leaky bucket: a burst goes through undelayed, the rest is spaced by the rate',
    policies: [policy('20/s', 3, 'lb', 'leaky-bucket', { maxDelayMs: 1000 })],
    steps: [
      { at: 0, expect: [ok(2, { delayMs: 0 })] }, { at: 0, expect: [ok(1, { delayMs: 0 })] }, { at: 0, expect: [ok(0, { delayMs: 0 })] },
      { at: 0, expect: [ok(0, { delayMs: 50 })] }, { at: 0, expect: [ok(0, { delayMs: 100 })] },
      { at: 10, expect: [ok(0, { delayMs: 140 })] }
    ]
  },
  {
    name: 'dry run: a dry-run limit reports a refusal but refuses nothing, and does not count what it would have refused',
    policies: [policy('10/s', 3, 'enforced'), policy('10/s', 1, 'trial', 'token-bucket', { dryRun: true })],
    steps: [
      { at: 0, expect: [ok(2), ok(0)] },
      { at: 0, expect: [ok(1), no(100)] },
      { at: 0, expect: [ok(0), no(100)] },
      { at: 0, expect: [no(100), no(100)] },
      { at: 100, expect: [ok(0), ok(0)] }
    ]
  },
  {
    name: 'bans: the Nth refusal within the window bans the client for the ban duration',
    bans: { after: 3, windowMs: 1000, durationMs: 5000 },
    policies: [policy('10/s', 1)],
    steps: [
      { at: 0, expect: [ok(0)] },
      { at: 0, expect: [no(100)] }, { at: 10, expect: [no(90)] },
      { at: 20, client: 'other', expect: [ok(0)] },
      { at: 20, expect: [no(80)] },
      { at: 30, expect: [banned(4990)] },
      { at: 30, client: 'other', expect: [no(90)] },
      { at: 5019, expect: [banned(1)] },
      { at: 5020, expect: [ok(0)] },
      // The count started again with the ban.
      { at: 5020, expect: [no(100)] }, { at: 5030, expect: [no(90)] }, { at: 5120, expect: [ok(0)] }
    ]
  },
  {
    name: 'bans: refusals further apart than the window never add up',
    bans: { after: 2, windowMs: 1000, durationMs: 60_000 },
    policies: [policy('1/s', 1)],
    steps: [
      { at: 0, expect: [ok(0)] }, { at: 500, expect: [no(500)] },
      { at: 1000, expect: [ok(0)] }, { at: 1600, expect: [no(400)] },
      { at: 2000, expect: [ok(0)] }, { at: 2100, expect: [no(900)] }, { at: 2200, expect: [banned(59_900)] }
    ]
  },
  {
    name: 'subjects: a limit keyed by another identity is shared by every client with that identity',
    policies: [policy('10/s', 2, 'default'), policy('10/s', 2, 'rule')],
    steps: [
      { at: 0, client: 'a', subjects: ['a', 'user-1'], expect: [ok(1), ok(1)] },
      { at: 0, client: 'b', subjects: ['b', 'user-1'], expect: [ok(1), ok(0)] },
      { at: 0, client: 'c', subjects: ['c', 'user-1'], expect: [ok(1), no(100)] },
      // c's refused request took nothing from c's own limit.
      { at: 0, client: 'c', subjects: ['c', 'user-2'], expect: [ok(1), ok(1)] }
    ]
  },
  {
    name: 'a state left under the same name by another algorithm reads as none',
    origin: ALIGNED,
    policies: [policy('1/m', 1, 'x'), policy('3/m', 1, 'x', 'fixed-window'), policy('3/m', 1, 'x', 'sliding-window')],
    steps: [
      { at: 0, keys: [0], expect: [ok(0)] },
      { at: 0, keys: [1], expect: [ok(2)] },
      { at: 0, keys: [2], expect: [ok(2)] },
      { at: 0, keys: [0], expect: [ok(0)] }
    ]
  },
  {
    name: 'bans count refusals of a request under several limits once',
    bans: { after: 2, windowMs: 10_000, durationMs: 1000 },
    policies: [policy('1/s', 1, 'a'), policy('1/s', 5, 'b')],
    steps: [
      { at: 0, expect: [ok(0), ok(4)] },
      { at: 10, expect: [no(990), ok(3)] },
      { at: 20, expect: [no(980), ok(3)] },
      { at: 30, expect: [banned(990)] }
    ]
  },
  {
    name: 'subjects: a single limit keyed by another identity',
    policies: [policy('1/s', 1, 'rule')],
    steps: [
      { at: 0, client: 'a', subjects: ['user-1'], expect: [ok(0)] },
      { at: 0, client: 'b', subjects: ['user-1'], expect: [no(1000)] }
    ]
  },
  {
    name: 'settle, bucket: a refund gives back what was charged, never more than a full bucket',
    policies: [policy('10/s', 3)],
    steps: [
      { at: 0, expect: [ok(2)] }, { at: 0, expect: [ok(1)] }, { at: 0, expect: [ok(0)] },
      { at: 0, expect: [no(100)] },
      settle(0, [-1], 0),
      { at: 0, expect: [ok(0)] },
      { at: 0, expect: [no(100)] },
      settle(50, [-5], 0),
      { at: 50, expect: [ok(2, { resetMs: 100 })] }
    ]
  },
  {
    name: 'settle, bucket: a post-charge empties the bucket at most, never into a debt',
    policies: [policy('10/s', 3)],
    steps: [
      { at: 0, expect: [ok(2)] },
      settle(0, [1], 0),
      { at: 0, expect: [ok(0)] },
      { at: 200, expect: [ok(1)] },
      settle(200, [10], 200),
      { at: 200, expect: [no(100, { remaining: 0, resetMs: 300 })] },
      // One interval later, as after using the whole burst: no debt of 9 more.
      { at: 300, expect: [ok(0)] }
    ]
  },
  {
    name: 'settle, fixed window: a refund lands in the window that holds the charge, or nowhere',
    origin: ALIGNED,
    policies: [policy('3/s', 3, 'default', 'fixed-window')],
    steps: [
      { at: 0, expect: [ok(2)] }, { at: 10, expect: [ok(1)] }, { at: 20, expect: [ok(0)] },
      { at: 30, expect: [no(970)] },
      settle(40, [-1], 20),
      { at: 50, expect: [ok(0)] },
      { at: 1000, expect: [ok(2)] },
      // Charged in the window before: nothing of it is left to give back.
      settle(1010, [-1], 20),
      { at: 1020, expect: [ok(1)] }
    ]
  },
  {
    name: 'settle, fixed window: a post-charge counts in the current window, up to the quota',
    origin: ALIGNED,
    policies: [policy('5/s', 5, 'default', 'fixed-window')],
    steps: [
      { at: 0, expect: [ok(4)] },
      settle(0, [2], 0),
      { at: 10, expect: [ok(1)] },
      settle(10, [10], 10),
      { at: 20, expect: [no(980, { remaining: 0 })] },
      { at: 1000, expect: [ok(4)] }
    ]
  },
  {
    name: 'settle, sliding window: a refund after the window rolled lowers the previous count',
    origin: ALIGNED,
    policies: [policy('4/s', 4, 'default', 'sliding-window')],
    steps: [
      { at: 0, expect: [ok(3)] }, { at: 0, expect: [ok(2)] }, { at: 0, expect: [ok(1)] }, { at: 0, expect: [ok(0)] },
      { at: 1500, expect: [ok(1)] },
      settle(1500, [-2], 0),
      { at: 1500, expect: [ok(1)] },
      { at: 1500, expect: [ok(0)] },
      { at: 1500, expect: [no(500, { remaining: 0 })] }
    ]
  },
  {
    name: 'settle, sliding window: a post-charge fills the current window up to the quota',
    origin: ALIGNED,
    policies: [policy('4/s', 4, 'default', 'sliding-window')],
    steps: [
      { at: 0, expect: [ok(3)] },
      settle(0, [10], 0),
      { at: 0, expect: [no(1250, { remaining: 0 })] },
      { at: 1500, expect: [ok(1)] }
    ]
  },
  {
    name: 'settle: each limit by its own difference, under its own subject; 0 leaves a limit alone',
    policies: [policy('10/s', 3, 'default'), policy('10/s', 3, 'rule')],
    steps: [
      { at: 0, subjects: ['client', 'user-1'], expect: [ok(2), ok(2)] },
      { at: 0, subjects: ['client', 'user-1'], expect: [ok(1), ok(1)] },
      settle(0, [0, -2], 0, { subjects: ['client', 'user-1'] }),
      { at: 0, subjects: ['client', 'user-1'], expect: [ok(0), ok(2)] },
      { at: 0, client: 'other', subjects: ['other', 'user-1'], expect: [ok(2), ok(1)] }
    ]
  },
  {
    name: 'in-flight: a slot is taken only with an admitted request; a full limit refuses and charges nothing',
    policies: [policy('10/s', 3)],
    concurrency: [makeConcurrencyLimit('concurrency', 1)],
    steps: [
      { at: 0, slots: { limits: [0], lease: 'a' }, expect: [ok(2)] },
      { at: 0, slots: { limits: [0], lease: 'b' }, expect: [full('concurrency')] },
      { at: 0, expect: [ok(1)] },
      { at: 0, client: 'other', slots: { limits: [0], lease: 'c' }, expect: [ok(2)] },
      { at: 10, release: 'a' },
      { at: 10, slots: { limits: [0], lease: 'd' }, expect: [ok(0)] },
      { at: 10, release: 'd' },
      // Refused by the rate limit with the slot free: it takes no slot, so e finds it free.
      { at: 10, slots: { limits: [0], lease: 'x' }, expect: [no(90)] },
      { at: 100, slots: { limits: [0], lease: 'e' }, expect: [ok(0)] }
    ]
  },
  {
    name: 'in-flight: a shared limit counts every client, and a lease is given back once',
    policies: [policy('10/s', 3)],
    concurrency: [makeConcurrencyLimit('global-concurrency', 2, true)],
    steps: [
      { at: 0, client: 'a', slots: { limits: [0], lease: 'a1' }, expect: [ok(2)] },
      { at: 0, client: 'b', slots: { limits: [0], lease: 'b1' }, expect: [ok(2)] },
      { at: 0, client: 'c', slots: { limits: [0], lease: 'c1' }, expect: [full('global-concurrency')] },
      { at: 0, client: 'a', release: 'a1' },
      { at: 0, client: 'a', release: 'a1' },
      { at: 0, client: 'c', slots: { limits: [0], lease: 'c2' }, expect: [ok(2)] },
      { at: 0, client: 'd', slots: { limits: [0], lease: 'd1' }, expect: [full('global-concurrency')] }
    ]
  },
  {
    name: 'calendar month: 31 January to 1 February, and a leap year\'s February of 29 days',
    origin: Date.UTC(2028, 0, 31, 23, 59),
    policies: [quota('2/mo')],
    steps: [
      { at: 0, expect: [ok(1, { resetMs: 60_000 })] },
      { at: 1, expect: [ok(0)] },
      { at: 2, expect: [no(59_998, { remaining: 0, resetMs: 59_998 })] },
      { at: 60_000, expect: [ok(1, { resetMs: 29 * DAY })] },
      { at: 60_000 + 29 * DAY - 1, expect: [ok(0, { resetMs: 1 })] },
      { at: 60_000 + 29 * DAY, expect: [ok(1, { resetMs: 31 * DAY })] }
    ]
  },
  {
    name: 'calendar month: a February of 28 days; a refund lands in the month that holds the charge',
    origin: Date.UTC(2027, 1, 28, 12),
    policies: [quota('2/mo')],
    steps: [
      { at: 0, expect: [ok(1, { resetMs: 12 * HOUR })] },
      { at: 0, expect: [ok(0)] },
      settle(1, [-1], 0),
      { at: 2, expect: [ok(0)] },
      { at: 12 * HOUR, expect: [ok(1, { resetMs: 31 * DAY })] },
      // Charged in February: nothing of it is left in March.
      settle(12 * HOUR, [-1], 0),
      { at: 12 * HOUR, expect: [ok(0)] }
    ]
  },
  {
    name: 'calendar week: from Monday 00:00',
    // Sunday 29 November 2026, 23:00 UTC.
    origin: Date.UTC(2026, 10, 29, 23),
    policies: [quota('1/w')],
    steps: [
      { at: 0, expect: [ok(0, { resetMs: HOUR })] },
      { at: HOUR / 2, expect: [no(HOUR / 2)] },
      { at: HOUR, expect: [ok(0, { resetMs: 7 * DAY })] }
    ]
  },
  {
    name: 'calendar day in a time zone: midnight in New York, not in UTC',
    // 23:59 on 29 November in New York (EST, UTC-5).
    origin: Date.UTC(2026, 10, 30, 4, 59),
    policies: [quota('1/d', 'America/New_York')],
    steps: [
      { at: 0, expect: [ok(0, { resetMs: 60_000 })] },
      { at: 30_000, expect: [no(30_000)] },
      { at: 60_000, expect: [ok(0, { resetMs: DAY })] }
    ]
  },
  {
    name: 'calendar days across daylight-saving changes: 23 hours in spring, 25 in autumn (Berlin)',
    // 28 March 2027 00:00 CET: clocks go forward at 02:00.
    origin: Date.UTC(2027, 2, 27, 23),
    policies: [quota('1/d', 'Europe/Berlin')],
    steps: [
      { at: 0, expect: [ok(0, { resetMs: 23 * HOUR })] },
      { at: 23 * HOUR - 1, expect: [no(1)] },
      { at: 23 * HOUR, expect: [ok(0, { resetMs: 24 * HOUR })] },
      // 31 October 2027 00:00 CEST: clocks go back at 03:00.
      { at: Date.UTC(2027, 9, 30, 22) - Date.UTC(2027, 2, 27, 23), expect: [ok(0, { resetMs: 25 * HOUR })] }
    ]
  },
  {
    name: 'calendar month in dry run: counted and reported, never refusing',
    origin: Date.UTC(2026, 10, 30, 12),
    policies: [quota('1/mo', 'UTC', 'trial', true)],
    steps: [
      { at: 0, expect: [ok(0, { resetMs: 12 * HOUR })] },
      { at: 1, expect: [no(12 * HOUR - 1, { remaining: 0 })] }
    ]
    },
  {
    name: 'settle, leaky bucket: a refund takes back queued delay, as for a token bucket',
    origin: ALIGNED,
    policies: [policy('10/s', 1, 'default', 'leaky-bucket', { maxDelayMs: 300 })],
    steps: [
      { at: 0, expect: [ok(0, { delayMs: 0 })] },
      { at: 0, expect: [ok(0, { delayMs: 100 })] },
      { at: 0, expect: [ok(0, { delayMs: 200 })] },
      { at: 0, expect: [ok(0, { delayMs: 300 })] },
      { at: 0, expect: [no(100)] },
      settle(0, [-2], 0),
      { at: 0, expect: [ok(0, { delayMs: 200 })] },
      // A post-charge fills the queue up to its end, never past it.
      settle(0, [5], 0),
      { at: 0, expect: [no(100)] },
      { at: 100, expect: [ok(0, { delayMs: 300 })] }
    ]
  },
  {
    name: 'two clocks: the gateway a day ahead of Redis still counts Redis\'s day (calendar quota)',
    // 23:00 UTC by Redis; the gateway reads 23:00 the next day.
    origin: ALIGNED - HOUR,
    gatewaySkewMs: DAY,
    policies: [quota('2/d')],
    steps: [
      { at: 0, expect: [ok(1, { resetMs: HOUR })] },
      { at: 1, expect: [ok(0)] },
      { at: 2, expect: [no(HOUR - 2, { remaining: 0, resetMs: HOUR - 2 })] },
      { at: HOUR, expect: [ok(1, { resetMs: DAY })] }
    ]
  },
  {
    name: 'two clocks: a gateway an hour behind across midnight gets no negative reset, and a refund finds the charge\'s day',
    // 00:30 UTC by Redis; the gateway reads 23:30 the day before.
    origin: ALIGNED + HOUR / 2,
    gatewaySkewMs: -HOUR,
    policies: [quota('2/d')],
    steps: [
      { at: 0, expect: [ok(1, { resetMs: DAY - HOUR / 2 })] },
      settle(1, [-1], 0),
      { at: 2, expect: [ok(1)] },
      { at: 3, expect: [ok(0)] },
      { at: 4, expect: [no(DAY - HOUR / 2 - 4, { remaining: 0 })] }
    ]
  },
  {
    name: 'two clocks: a calendar quota\'s post-charge counts in Redis\'s day, up to the quota',
    // 23:50 UTC by Redis; the gateway reads 00:10 the next day.
    origin: ALIGNED - 10 * 60_000,
    gatewaySkewMs: 20 * 60_000,
    policies: [quota('5/d')],
    steps: [
      { at: 0, expect: [ok(4, { resetMs: 10 * 60_000 })] },
      settle(0, [3], 0),
      { at: 1, expect: [ok(0)] },
      settle(1, [10], 1),
      { at: 2, expect: [no(10 * 60_000 - 2, { remaining: 0 })] },
      { at: 10 * 60_000, expect: [ok(4, { resetMs: DAY })] }
    ]
    },
  {
    name: 'settle on another algorithm\'s state (a rule that changed algorithm, same limit name): read as none, in both directions',
    origin: ALIGNED,
    policies: [policy('1/s', 2, 'x', 'token-bucket'), policy('2/s', 2, 'x', 'fixed-window')],
    steps: [
      { at: 0, keys: [0], expect: [ok(1)] },
      // A post-charge as a fixed window on the bucket's state: a fresh window, then counted.
      settle(10, [1], 0, { keys: [1] }),
      { at: 20, keys: [1], expect: [ok(0)] },
      // A refund as a bucket on the window's state: nothing to give back; the bucket starts afresh.
      settle(30, [-1], 0, { keys: [0] }),
      { at: 40, keys: [0], expect: [ok(1)] }
    ]
  },
  {
    name: 'admin: inspect, ban, unban and reset, as the admin API does them',
    origin: ALIGNED,
    policies: [policy('1/s', 3)],
    steps: [
      { at: 0, expect: [ok(2)] },
      { at: 0, admin: 'inspect', shows: { remaining: [2], bannedMs: 0, refusals: 0 } },
      { at: 0, admin: 'ban', ms: 60_000 },
      { at: 10, expect: [{ allowed: false, banned: true, retryAfterMs: 59_990 }] },
      { at: 20, admin: 'inspect', shows: { remaining: [2], bannedMs: 59_980 } },
      { at: 30, admin: 'unban' },
      { at: 30, expect: [ok(1)] },
      { at: 40, admin: 'reset' },
      { at: 40, expect: [ok(2)] },
      { at: 50, admin: 'inspect', shows: { remaining: [2], bannedMs: 0 } }
    ]
  },
  {
    name: 'admin: a reset clears the refusal count towards a ban, and an unban the ban with it',
    origin: ALIGNED,
    bans: { after: 2, windowMs: 60_000, durationMs: 600_000 },
    policies: [policy('1/m', 1)],
    steps: [
      { at: 0, expect: [ok(0)] },
      { at: 1, expect: [no(59_999)] },
      { at: 2, admin: 'inspect', shows: { remaining: [0], refusals: 1 } },
      { at: 3, admin: 'reset' },
      { at: 4, admin: 'inspect', shows: { remaining: [1], refusals: 0 } },
      { at: 5, expect: [ok(0)] },
      { at: 6, expect: [no(59_999)] },
      { at: 7, expect: [no(59_998)] },
      { at: 8, expect: [{ allowed: false, banned: true, retryAfterMs: 599_999 }] },
      { at: 9, admin: 'unban' },
      { at: 10, admin: 'inspect', shows: { bannedMs: 0, refusals: 0 } }
    ]
  },
  {
    name: 'the usage ledger: requests admitted (with their cost) and refused, on the client\'s day',
    origin: ALIGNED + HOUR,
    ledger: true,
    policies: [policy('1/s', 3)],
    steps: [
      { at: 0, cost: 2, expect: [ok(1)] },
      { at: 1, expect: [ok(0)] },
      { at: 2, expect: [no(998)] },
      { at: 3, admin: 'usage', usage: { admitted: 2, refused: 1, cost: 3 } },
      { at: 4, client: 'other', admin: 'usage', usage: { admitted: 0, refused: 0, cost: 0 } }
    ]
  }
]
