/**
 * The Store persists limiter state; the algorithms (pure functions) decide. Every store
 * takes all the limits that apply to one request in one atomic call: the request passes
 * only if every limit passes, and a rejected request consumes nothing from any of them.
 */
import type { Decision } from '../limiter/decision.js'
import type { Policy } from '../limiter/policy.js'

/** Whether a store answered asynchronously (remote) rather than with the decisions at once. */
export function isPromise<T> (v: T | Promise<T>): v is Promise<T> {
  return typeof (v as Promise<T>).then === 'function'
}

/** The memory store's key for a policy and a subject. */
export function localKey (policy: Policy, subject: string): string {
  return policy.shared ? policy.name : policy.name + '|' + subject
}

export interface Store {
  /** `memory` or `redis`: shown in /readyz and metrics. */
  readonly kind: string
  /**
   * Decide one request against several limits at once.
   * @param subject  who is asking (the client identity key, e.g. `ip:203.0.113.7`); a
   *                 policy marked `shared` (the global limit) ignores it. The store lays
   *                 out its own keys from (policy name, subject).
   * @param policies the limits that apply
   * @param cost     tokens the request takes from each limit
   * @returns one decision per policy, in order. Synchronous stores return the array
   *          directly so the hot path pays no promise; remote stores return a promise.
   */
  consume (subject: string, policies: readonly Policy[], cost: number): Decision[] | Promise<Decision[]>
  /** Keys currently tracked (for metrics, tests and memory checks). */
  size (): number
  /** Whether the store can take decisions now (for /readyz). */
  ready (): boolean
  /** What is deciding right now, e.g. `memory`, `redis`, `local-fallback` (for /readyz). */
  mode (): string
  /** Release timers and connections. */
  close (): Promise<void>
}
