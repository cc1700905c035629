/**
 * The deny cache of a shared store (STYLE 19, envoy's over-limit local cache): what the
 * shared store refused until an instant is refused here until that instant without asking
 * it again. Rejections do not move a limit, so nobody can be admitted earlier, whatever
 * other instances do meanwhile; a ban is exact knowledge too. Any store whose decisions
 * cost a round trip can keep one.
 */
import { LRUCache } from 'lru-cache'
import type { Clock } from '../core/clock.js'
import { bannedDecision, type Decision } from '../core/decision.js'
import type { Policy } from '../core/policy.js'

/** Clients remembered by the deny cache at most. */
export const DENY_CACHE_MAX = 100_000

interface Denial {
  /** Local clock time at which the rejection was decided. */
  at: number
  until: number
  /** A request costing less may still pass: the denial holds only from this cost up. */
  cost: number
  policies: readonly Policy[]
  decisions: Decision[]
}

function samePolicies (a: readonly Policy[], b: readonly Policy[]): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

export class DenyCache {
  /** A limit's key → the refusal that holds it. */
  private readonly denials = new LRUCache<string, Denial>({ max: DENY_CACHE_MAX })
  /** Banned clients → local clock time their ban ends. */
  private readonly banned = new LRUCache<string, number>({ max: DENY_CACHE_MAX })

  /**
   * @param clock measures how long a denial lasts locally (durations only; skew does not matter)
   * @param countsRefusals bans are on: every refusal must reach the shared store to be
   *        counted, so only bans are remembered (once banned, the ban is)
   */
  constructor (private readonly clock: Clock, private readonly countsRefusals = false) {}

  /**
   * What the shared store answered for a request (`keys`: its limits' keys, in order, as
   * `refusal` takes them): a ban, or the longest refusal of a limit that is enforced and
   * whose charges are never given back (a refund could free it early), is remembered.
   * Returns whether the request was admitted (what a store holding slots needs to know).
   */
  answered (client: string, keys: readonly string[], policies: readonly Policy[], cost: number, decisions: Decision[]): boolean {
    const first = decisions[0]
    if (first !== undefined && first.banned === true) {
      this.rememberBan(client, first.retryAfterMs)
      return false
    }
    if (first !== undefined && first.concurrency !== undefined) return false
    let longest = -1
    for (let i = 0; i < decisions.length; i++) {
      const d = decisions[i]!
      if (!d.allowed && !d.policy.dryRun && (longest === -1 || d.retryAfterMs > decisions[longest]!.retryAfterMs)) longest = i
    }
    if (longest === -1) return true
    const refusing = decisions[longest]!
    if (!this.countsRefusals && !refusing.policy.refundable) this.rememberDenial(keys[longest]!, refusing.retryAfterMs, cost, policies, decisions)
    return false
  }

  /**
   * The known refusal of this request, its durations brought up to now: the client's ban,
   * or a denial of any of its limits' `keys` for the same set of limits and at least this cost.
   */
  refusal (client: string, keys: readonly string[], policies: readonly Policy[], cost: number): Decision[] | undefined {
    return this.bannedHere(client) ?? this.denied(keys, policies, cost)
  }

  /** The shared store banned the client for `ms` more. */
  private rememberBan (client: string, ms: number): void {
    this.banned.set(client, this.clock.now() + ms)
  }

  /** The shared store refused the request under `key` (its longest refusal) with these decisions. */
  private rememberDenial (key: string, retryAfterMs: number, cost: number, policies: readonly Policy[], decisions: Decision[]): void {
    const at = this.clock.now()
    this.denials.set(key, { at, until: at + retryAfterMs, cost, policies, decisions })
  }

  /** A charge under `key` was given back: its denial may no longer hold. */
  drop (key: string): void {
    if (this.denials.size > 0) this.denials.delete(key)
  }

  /** Drops every denial and ban (after a reset or an unban, here or elsewhere). */
  clear (): void {
    this.denials.clear()
    this.banned.clear()
  }

  get size (): number {
    return this.denials.size + this.banned.size
  }

  private denied (keys: readonly string[], policies: readonly Policy[], cost: number): Decision[] | undefined {
    if (this.denials.size === 0) return undefined
    for (let i = 0; i < policies.length; i++) {
      const denial = this.denials.get(keys[i]!)
      if (denial === undefined || cost < denial.cost) continue
      const now = this.clock.now()
      if (now >= denial.until) {
        this.denials.delete(keys[i]!)
        continue
      }
      // Only the same set of limits can reuse the whole answer; any other set asks again.
      if (!samePolicies(denial.policies, policies)) continue
      const elapsed = now - denial.at
      return denial.decisions.map(d => ({ ...d, resetMs: Math.max(0, d.resetMs - elapsed), retryAfterMs: Math.max(0, d.retryAfterMs - elapsed) }))
    }
    return undefined
  }

  /** The ban the shared store answered for this client, while it lasts. */
  private bannedHere (client: string): Decision[] | undefined {
    if (this.banned.size === 0) return undefined
    const until = this.banned.get(client)
    if (until === undefined) return undefined
    const left = until - this.clock.now()
    if (left > 0) return bannedDecision(left)
    this.banned.delete(client)
    return undefined
  }
}
