/** Runs the store-contract table against a store factory. */
import type { Store, BanSettings } from '../../src/store/types.js'
import type { SlotRequest } from '../../src/core/policy.js'
import type { Policy } from '../../src/core/policy.js'
import { dayOf } from '../../src/algorithms/calendar.js'
import { CONTRACT, START, type AdminStep } from './store-contract.js'

export interface ContractStore {
  store: Store
  /**
   * Move the store's clock to this absolute time (ms since the epoch). A store that decides
   * on another clock than the gateway's (Redis TIME) takes the gateway's as `gatewayMs`.
   */
  setNow (ms: number, gatewayMs: number): void | Promise<void>
  /** Whether the store decides on a clock apart from the gateway's: cases with gatewaySkewMs then skew it. */
  twoClocks?: boolean
  close (): Promise<void>
}

/** The tap assertions used here (tap's own Test type is overloaded beyond inference). */
interface Asserts {
  test (...args: any[]): Promise<unknown>
  equal (...args: any[]): unknown
  ok (...args: any[]): unknown
  same (...args: any[]): unknown
}

/** How long a contract case's ledger lines are kept. */
const LEDGER_TTL_MS = 2 * 86_400_000

/** An admin step: the operation, or what the store shows of the client, asserted. */
async function admin (t: Asserts, store: Store, client: string, step: AdminStep, policies: Policy[], origin: number, i: number): Promise<void> {
  const where = `step ${i} (t=${step.at}) ${step.admin}`
  if (step.admin === 'ban') await store.ban(client, step.ms!)
  else if (step.admin === 'unban') await store.unban(client)
  else if (step.admin === 'reset') await store.reset(client, policies)
  else if (step.admin === 'inspect') {
    const state = await store.inspect(client, policies)
    const shows = step.shows!
    if (shows.remaining !== undefined) t.same(state.limits.map(l => l.remaining), shows.remaining, `${where}: remaining`)
    if (shows.bannedMs !== undefined) t.equal(state.bannedMs, shows.bannedMs, `${where}: bannedMs`)
    if (shows.refusals !== undefined) t.equal(state.refusals, shows.refusals, `${where}: refusals`)
  } else {
    const day = dayOf(origin + step.at, 'UTC')
    t.same(await store.usage(client, [day]), [{ day, ...step.usage! }], `${where}: the day's line`)
  }
}

/** Tolerance for comparing milliseconds computed by different stores (float rounding). */
const MS_TOLERANCE = 0.01

export async function runContract (t: Asserts, make: (bans: BanSettings | undefined, shared: boolean) => ContractStore | Promise<ContractStore>): Promise<void> {
  let n = 0
  for (const c of CONTRACT) {
    await t.test(c.name, async (t: Asserts) => {
      // A limit shared by every client: Redis keeps all the keys in one hash slot (createStore's singleSlot).
      const s = await make(c.bans, [...c.policies, ...(c.concurrency ?? [])].some(l => l.shared))
      const prefix = `case${n++}:`
      try {
        const origin = c.origin ?? START
        // Each lease's slots as taken, to give back by its id.
        const leases = new Map<string, SlotRequest>()
        // The gateway's clock minus the store's (Redis TIME), where the store has two.
        const skew = s.twoClocks === true ? c.gatewaySkewMs ?? 0 : 0
        for (const [i, step] of c.steps.entries()) {
          await s.setNow(origin + step.at, origin + step.at + skew)
          const client = prefix + (step.client ?? 'client')
          if ('release' in step) {
            s.store.release(client, leases.get(step.release)!)
            continue
          }
          if ('admin' in step) {
            await admin(t, s.store, client, step, c.policies, origin, i)
            continue
          }
          const idx = step.keys ?? c.policies.map((_, k) => k)
          const policies = idx.map(k => c.policies[k]!)
          const subjects = step.subjects?.map(x => prefix + x)
          if ('settle' in step) {
            s.store.settle(client, policies, step.settle.deltas, subjects, origin + step.settle.chargedAt + skew)
            continue
          }
          let slots: SlotRequest | undefined
          if (step.slots !== undefined) {
            slots = { limits: step.slots.limits.map(k => c.concurrency![k]!), subjects: undefined, lease: prefix + step.slots.lease }
            leases.set(step.slots.lease, slots)
          }
          const usage = c.ledger === true ? { day: dayOf(origin + step.at, 'UTC'), ttlMs: LEDGER_TTL_MS } : undefined
          const decisions = await s.store.consume(client, policies, step.cost ?? 1, subjects, slots, usage)
          const banned = step.expect[0]!.banned === true
          const full = step.expect[0]!.concurrency
          t.equal(decisions.length, banned || full !== undefined ? 1 : idx.length, `step ${i}: one decision per policy (one for a ban or a full in-flight limit)`)
          step.expect.forEach((e, j) => {
            const d = decisions[j]!
            const where = `step ${i} (t=${step.at}) policy ${d.policy.name}`
            t.equal(d.allowed, e.allowed, `${where}: allowed`)
            t.equal(d.banned === true, banned, `${where}: banned`)
            t.equal(d.concurrency?.name, e.concurrency, `${where}: refused by a full in-flight limit`)
            if (e.remaining !== undefined) t.equal(d.remaining, e.remaining, `${where}: remaining`)
            if (e.retryAfterMs !== undefined) t.ok(Math.abs(d.retryAfterMs - e.retryAfterMs) < MS_TOLERANCE, `${where}: retryAfterMs ${d.retryAfterMs} ≈ ${e.retryAfterMs}`)
            if (e.resetMs !== undefined) t.ok(Math.abs(d.resetMs - e.resetMs) < MS_TOLERANCE, `${where}: resetMs ${d.resetMs} ≈ ${e.resetMs}`)
            if (e.delayMs !== undefined) t.ok(Math.abs(d.delayMs - e.delayMs) < MS_TOLERANCE, `${where}: delayMs ${d.delayMs} ≈ ${e.delayMs}`)
          })
        }
      } finally {
        await s.close()
      }
    })
  }
}
