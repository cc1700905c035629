/** Runs the store-contract table against a store factory. */
import type { Store, BanSettings } from '../../src/store/types.js'
import type { SlotRequest } from '../../src/core/policy.js'
import { CONTRACT, START } from './store-contract.js'

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
          const decisions = await s.store.consume(client, policies, step.cost ?? 1, subjects, slots)
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
