/**
 * The Store persists limiter state; the algorithms (pure functions) decide. Every store
 * takes all the limits that apply to one request in one atomic call: the request passes
 * only if every enforced limit passes, and a refused request consumes nothing from any.
 */
import type { Decision } from '../core/decision.js'
import type { BanSettings, ConcurrencyLimit, Policy, PolicyLabel, SlotRequest } from '../core/policy.js'

export type { BanSettings } from '../core/policy.js'
import type { State } from '../algorithms/index.js'
import type { UsageLedger, UsageMark } from './usage.js'

/** Whether a store answered asynchronously (remote) rather than with the decisions at once. */
export function isPromise<T> (v: T | Promise<T>): v is Promise<T> {
  return typeof (v as Promise<T>).then === 'function'
}

/** The memory store's key for a policy and a subject (an in-flight limit's: its `policy`). */
export function localKey (policy: PolicyLabel, subject: string): string {
  return policy.shared ? policy.name : policy.name + '|' + subject
}


/** A client's standing, for the admin API. */
export interface ClientState {
  readonly limits: ReadonlyArray<{
    readonly policy: string
    readonly algorithm: string
    /** Requests the client could make right now. */
    readonly remaining: number
    /** Milliseconds until its limit is back in full. */
    readonly resetMs: number
    /** The raw stored state (TAT, or window start and counts); undefined: a full limit. */
    readonly state: State | undefined
  }>
  /** Whole milliseconds of ban left, rounded up; 0: not banned. */
  readonly bannedMs: number
  /** Refusals counted towards a ban in the current ban window. */
  readonly refusals: number
  /** The client's in-flight limits: requests in progress now, of at most `max`. */
  readonly inFlight: ReadonlyArray<{ readonly limit: string, readonly max: number, readonly inProgress: number }>
}

/** Deciding: what the limiter uses, on every request. */
export interface DecidingStore {
  /**
   * Decide one request against several limits at once.
   *
   * Admitted when every policy that is not a dry run allows it; then each policy that
   * allowed it consumes `cost`. Refused, nothing is consumed; with bans on, the refusal
   * counts towards banning `client`. A banned client gets one decision with `banned` set.
   *
   * @param client   who is asking (the client identity key, e.g. `ip:203.0.113.7`)
   * @param policies the limits that apply
   * @param cost     what the request takes from each limit (tokens, or window requests)
   * @param subjects per policy, whose limit it is when not the client's own (a route rule
   *                 keyed by another identity source); omitted: the client's for all. A
   *                 policy marked `shared` (the global limit) ignores its subject.
   * @param slots    in-flight limits to take a slot in, in the same atomic step: only when
   *                 the request is admitted, and all or none; one full refuses the request
   *                 (one decision with `concurrency` set) and nothing is charged
   * @param usage    where the request goes in the usage ledger (admitted with its cost, or
   *                 refused), in the same atomic step; undefined: not recorded
   * @returns one decision per policy, in order. Synchronous stores return the array
   *          directly so the hot path pays no promise; remote stores return a promise.
   */
  consume (client: string, policies: readonly Policy[], cost: number, subjects?: readonly string[], slots?: SlotRequest, usage?: UsageMark): Decision[] | Promise<Decision[]>
  /**
   * Gives back the slots a request took under `slots.lease` (at most once; an unknown lease
   * is ignored). Never waits: a remote store sends it and moves on (its leases expire).
   */
  release (client: string, slots: SlotRequest): void
  /**
   * Settles what an admitted request was charged, once its response is known: per policy,
   * a difference to charge (> 0, down to an empty limit at most) or to give back (< 0,
   * from the window that holds the charge); 0 leaves a policy alone (see
   * algorithms/settle.ts). Never waits: a remote store sends it with the turn's writes.
   *
   * @param chargedAt when the request was charged (epoch ms, the decision's clock)
   */
  settle (client: string, policies: readonly Policy[], deltas: readonly number[], subjects: readonly string[] | undefined, chargedAt: number): void
}

/** Administering clients: what the admin API uses. */
export interface ClientAdmin extends UsageLedger {
  /** A client's standing under these limits (never changes anything). */
  inspect (client: string, policies: readonly Policy[], slots?: readonly ConcurrencyLimit[]): ClientState | Promise<ClientState>
  /** Gives the client its full limits back under these limits, and clears its refusal count. */
  reset (client: string, policies: readonly Policy[]): void | Promise<void>
  /** Refuses the client outright (403) for `ms`. */
  ban (client: string, ms: number): void | Promise<void>
  unban (client: string): void | Promise<void>
}

/** Status: what /readyz, metrics and shutdown use. */
export interface StoreStatus {
  /** `memory` or `redis`: shown in /readyz and metrics. */
  readonly kind: string
  /**
   * Entries this process holds in memory: the memory store's clients, bans and refusal
   * counts; the Redis store's local denials and bans; the failover store's local fallback
   * (gateway_tracked_clients, /readyz, memory checks).
   */
  size (): number
  /** Whether the store can take decisions now (for /readyz). */
  ready (): boolean
  /** What is deciding right now, e.g. `memory`, `redis`, `local-fallback` (for /readyz). */
  mode (): string
  /** Release timers and connections. */
  close (): Promise<void>
}

export interface Store extends DecidingStore, ClientAdmin, StoreStatus {}

/**
 * Told of each decision's fate by a remote store itself, so that nothing is chained on a
 * decision's promise (the failover store).
 */
export interface DecisionWatcher {
  /** The remote store answered a decision for this client. */
  answered (client: string, policies: readonly Policy[], subjects: readonly string[] | undefined): void
  /** It failed: the decisions to answer instead (or throws to refuse the request). */
  failed (err: unknown, client: string, policies: readonly Policy[], cost: number, subjects: readonly string[] | undefined, slots: SlotRequest | undefined): Decision[] | Promise<Decision[]>
}

/** What the failover store needs of the shared (Redis) store behind it. */
export interface SharedStore extends Store {
  /** Told of each decision's fate. */
  watcher: DecisionWatcher | undefined
  /** A decision already known locally to be refused (the deny cache), if any. */
  deniedLocally (client: string, policies: readonly Policy[], cost: number, subjects?: readonly string[]): Decision[] | undefined
  /** The node that owns a decision's keys ('' with one node). */
  shardFor (client: string, policies: readonly Policy[], subjects?: readonly string[]): string
  /** The node that owns a key ('' with one node). */
  shardOf (key: string): string
  /** The key a decision is routed by. */
  firstKey (client: string, policies: readonly Policy[], subjects?: readonly string[]): string
  /** Resolves when the node that owns `key` answers again. */
  probe (key: string): Promise<void>
}
