/**
 * Keeps the gateway serving when Redis misbehaves. Each failed decision is answered by
 * STORE_FAILURE_MODE (`local`: this instance's own memory store; `open`: admit; `closed`:
 * 503), never by a 429. After a few consecutive failures a circuit opens: requests stop
 * paying the Redis timeout and go straight to the failure mode while a probe asks Redis
 * every REDIS_PROBE_INTERVAL_MS; the first answer closes the circuit and shared limits
 * resume. Each transition is logged once.
 *
 * There is one circuit per Redis node that owns keys: one for a single Redis or Sentinel,
 * one per master on a Cluster, so a dead master sends only its own clients to the failure
 * mode while the clients of the other masters keep their shared limits. A circuit whose
 * node no longer owns the slot it failed on (its replica was promoted) closes at once.
 */
import type { FastifyBaseLogger } from 'fastify'
import type { StoreFailureMode } from '../config/index.js'
import { StoreUnavailableError } from '../errors.js'
import type { Decision } from '../core/decision.js'
import type { ConcurrencyLimit, Policy, SlotRequest } from '../core/policy.js'
import type { ClientState, DecisionWatcher, SharedStore, Store } from './types.js'
import type { UsageMark, UsageRow, UsageTotal } from './usage.js'

/** Consecutive failed decisions on one node that open its circuit. */
export const FAILURES_TO_OPEN = 3

export interface FailoverOptions {
  primary: SharedStore
  /** The local limiter for mode `local`. */
  local: Store
  failureMode: StoreFailureMode
  probeIntervalMs: number
  log: FastifyBaseLogger
}

const FALLBACK_MODE: Record<StoreFailureMode, string> = { local: 'local-fallback', open: 'fail-open', closed: 'fail-closed' }

/** The health of one Redis node (the shard: '' for a single Redis, `host:port` on a Cluster). */
interface Circuit {
  readonly shard: string
  failures: number
  open: boolean
  /** A key that failed on this node: what the probe asks for (routed like the decisions). */
  key: string
  probe: NodeJS.Timeout | undefined
  /** Decisions answered by the failure mode since the circuit opened. */
  fallbackDecisions: number
}

/** The refunds of a settlement (its negative differences, the rest 0); undefined: none. */
function refundsOf (deltas: readonly number[]): number[] | undefined {
  return deltas.some(d => d < 0) ? deltas.map(d => d < 0 ? d : 0) : undefined
}

export class FailoverStore implements Store, DecisionWatcher {
  readonly kind = 'redis'
  private readonly circuits = new Map<string, Circuit>()
  /** Circuits with failures counted (open or not): only then does a success reset one. */
  private failing = 0
  /** Open circuits: only then is a decision's node looked up before asking Redis. */
  private opened = 0
  private closed = false

  constructor (private readonly opts: FailoverOptions) {
    // Redis tells this store of each decision's fate, so nothing is chained on the
    // decision's promise (one hop from Redis's reply to the limiter).
    opts.primary.watcher = this
  }

  consume (client: string, policies: readonly Policy[], cost: number, subjects?: readonly string[], slots?: SlotRequest, usage?: UsageMark): Decision[] | Promise<Decision[]> {
    if (this.opened > 0) {
      const circuit = this.circuits.get(this.opts.primary.shardFor(client, policies, subjects))
      // The ledger is Redis's: what is decided without it goes unrecorded.
      if (circuit?.open === true) {
        return this.opts.primary.deniedLocally(client, policies, cost, subjects) ?? this.fallback(circuit, client, policies, cost, subjects, slots)
      }
    }
    return this.opts.primary.consume(client, policies, cost, subjects, slots, usage)
  }

  async usage (client: string, days: readonly string[]): Promise<UsageRow[]> {
    return await this.opts.primary.usage(client, days)
  }

  async topUsage (days: readonly string[], limit: number): Promise<UsageTotal[]> {
    return await this.opts.primary.topUsage(days, limit)
  }

  /** Redis answered: a node with failures counted is healthy again. */
  answered (client: string, policies: readonly Policy[], subjects: readonly string[] | undefined): void {
    if (this.failing > 0) this.succeeded(client, policies, subjects)
  }

  /** Redis failed a decision: counted towards its node's circuit, answered by the failure mode. */
  failed (err: unknown, client: string, policies: readonly Policy[], cost: number, subjects: readonly string[] | undefined, slots: SlotRequest | undefined): Decision[] | Promise<Decision[]> {
    return this.fallback(this.failedOn(err, client, policies, subjects), client, policies, cost, subjects, slots)
  }

  private fallback (circuit: Circuit, client: string, policies: readonly Policy[], cost: number, subjects?: readonly string[], slots?: SlotRequest): Decision[] | Promise<Decision[]> {
    circuit.fallbackDecisions++
    switch (this.opts.failureMode) {
      case 'local':
        return this.opts.local.consume(client, policies, cost, subjects, slots)
      case 'open':
        // Nothing is known: report full buckets rather than invent a count.
        return policies.map(policy => ({ policy, allowed: true, remaining: policy.capacity, resetMs: 0, retryAfterMs: 0, delayMs: 0 }))
      case 'closed':
        throw new StoreUnavailableError()
    }
  }

  private circuitOf (key: string): Circuit {
    const shard = this.opts.primary.shardOf(key)
    let circuit = this.circuits.get(shard)
    if (circuit === undefined) {
      circuit = { shard, failures: 0, open: false, key, probe: undefined, fallbackDecisions: 0 }
      this.circuits.set(shard, circuit)
    }
    return circuit
  }

  private succeeded (client: string, policies: readonly Policy[], subjects?: readonly string[]): void {
    const circuit = this.circuits.get(this.opts.primary.shardFor(client, policies, subjects))
    if (circuit !== undefined && !circuit.open && circuit.failures > 0) {
      circuit.failures = 0
      this.failing--
    }
  }

  private failedOn (err: unknown, client: string, policies: readonly Policy[], subjects?: readonly string[]): Circuit {
    const key = this.opts.primary.firstKey(client, policies, subjects)
    const circuit = this.circuitOf(key)
    if (circuit.open) return circuit
    if (circuit.failures++ === 0) this.failing++
    circuit.key = key
    if (circuit.failures < FAILURES_TO_OPEN) return circuit
    circuit.open = true
    circuit.fallbackDecisions = 0
    this.opened++
    this.opts.log.warn({ err, mode: FALLBACK_MODE[this.opts.failureMode], ...this.node(circuit) }, 'redis unavailable: deciding with STORE_FAILURE_MODE until it answers again')
    this.scheduleProbe(circuit)
    return circuit
  }

  /** Which node, in logs: only on a Cluster, where there are several. */
  private node (circuit: Circuit): { node?: string } {
    return circuit.shard === '' ? {} : { node: circuit.shard }
  }

  private closeCircuit (circuit: Circuit, why: string): void {
    circuit.open = false
    circuit.failures = 0
    circuit.probe = undefined
    this.opened--
    this.failing--
    this.opts.log.info({ mode: this.opened === 0 ? 'redis' : this.mode(), fallbackDecisions: circuit.fallbackDecisions, ...this.node(circuit) }, why)
  }

  /** One probe at a time per circuit: the next is scheduled only once this one has failed. */
  private scheduleProbe (circuit: Circuit): void {
    circuit.probe = setTimeout(() => {
      this.opts.primary.probe(circuit.key).then(() => {
        // A probe that answers after close(): nothing left to resume.
        /* c8 ignore next */
        if (this.closed) return
        // Answered by another node (the slot moved to a promoted replica) or by this one.
        const now = this.opts.primary.shardOf(circuit.key)
        this.closeCircuit(circuit, now === circuit.shard ? 'redis answers again: shared limits resumed' : `redis: the failed node's slots are served by ${now} now; shared limits resumed`)
      }, () => { if (!this.closed) this.scheduleProbe(circuit) })
    }, this.opts.probeIntervalMs)
    circuit.probe.unref()
  }

  /** Wherever the request took its slots: Redis, or the local fallback (each ignores a lease it does not hold). */
  release (client: string, slots: SlotRequest): void {
    this.opts.local.release(client, slots)
    this.opts.primary.release(client, slots)
  }

  /**
   * Where the client's decisions go now: the local fallback while its node's circuit is
   * open (mode `local`), else Redis. The request may have been charged on the other side
   * (a decision that failed over before the circuit opened, or one taken before it
   * closed): with mode `local`, what is given back is given back on both sides. A side
   * that took no charge mostly has nothing to give (a full limit); at worst it gives back
   * a charge of its own, once.
   */
  settle (client: string, policies: readonly Policy[], deltas: readonly number[], subjects: readonly string[] | undefined, chargedAt: number): void {
    const { local, primary, failureMode } = this.opts
    const isLocal = this.opened > 0 && this.circuits.get(primary.shardFor(client, policies, subjects))?.open === true
    if (!isLocal) primary.settle(client, policies, deltas, subjects, chargedAt)
    if (failureMode !== 'local') return
    if (isLocal) local.settle(client, policies, deltas, subjects, chargedAt)
    const refunds = refundsOf(deltas)
    if (refunds !== undefined) (isLocal ? primary : local).settle(client, policies, refunds, subjects, chargedAt)
  }

  /** The shared state (Redis): what every instance decides with. */
  async inspect (client: string, policies: readonly Policy[], slots?: readonly ConcurrencyLimit[]): Promise<ClientState> {
    return await this.opts.primary.inspect(client, policies, slots)
  }

  /**
   * In Redis and in the local fallback alike, so an outage does not bring it back. Redis
   * first: a write Redis refuses (the admin gets a 503) is applied nowhere.
   */
  async reset (client: string, policies: readonly Policy[]): Promise<void> {
    await this.opts.primary.reset(client, policies)
    await this.opts.local.reset(client, policies)
  }

  async ban (client: string, ms: number): Promise<void> {
    await this.opts.primary.ban(client, ms)
    await this.opts.local.ban(client, ms)
  }

  async unban (client: string): Promise<void> {
    await this.opts.primary.unban(client)
    await this.opts.local.unban(client)
  }

  size (): number {
    return this.opts.local.size()
  }

  ready (): boolean {
    return this.opened === 0 || this.opts.failureMode !== 'closed'
  }

  /** `redis`, or the failure mode while any node's circuit is open. */
  mode (): string {
    return this.opened > 0 ? FALLBACK_MODE[this.opts.failureMode] : 'redis'
  }

  async close (): Promise<void> {
    this.closed = true
    for (const c of this.circuits.values()) clearTimeout(c.probe)
    this.circuits.clear()
    this.opened = 0
    await this.opts.primary.close()
    await this.opts.local.close()
  }
}
