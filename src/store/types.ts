/**
 * The Store persists limiter state; the algorithms (pure functions) decide. Every store
 * takes all the limits that apply to one request in one atomic call: the request passes
 * only if every limit passes, and a rejected request consumes nothing from any of them.
 */
import type { Decision } from '../limiter/decision.js'
import type { Policy } from '../limiter/policy.js'

export interface Store {
  /** `memory` or `redis`: shown in /readyz and metrics. */
  readonly kind: string
  /**
   * Decide one request against several limits at once.
   * @param keys     one store key per policy (same order), already namespaced by policy
   * @param policies the limits that apply
   * @param cost     tokens the request takes from each limit
   * @returns one decision per policy, in order. Synchronous stores return the array
   *          directly so the hot path pays no promise; remote stores return a promise.
   */
  consume (keys: readonly string[], policies: readonly Policy[], cost: number): Decision[] | Promise<Decision[]>
  /** Keys currently tracked (for metrics, tests and memory checks). */
  size (): number
  /** Whether the store can take decisions now (for /readyz). */
  ready (): boolean
  /** Release timers and connections. */
  close (): Promise<void>
}
