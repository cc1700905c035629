/**
 * Keeps the gateway serving when Redis misbehaves. Each failed decision is answered by
 * STORE_FAILURE_MODE (`local`: this instance's own memory store; `open`: admit; `closed`:
 * 503), never by a 429. After a few consecutive failures a circuit opens: requests stop
 * paying the Redis timeout and go straight to the failure mode while a probe pings Redis
 * every REDIS_PROBE_INTERVAL_MS; the first answer closes the circuit and shared limits
 * resume. Each transition is logged once.
 */
import type { FastifyBaseLogger } from 'fastify'
import type { StoreFailureMode } from '../config/index.js'
import { StoreUnavailableError } from '../errors.js'
import type { Decision } from '../limiter/decision.js'
import type { Policy } from '../limiter/policy.js'
import type { RedisStore } from './redis.js'
import { isPromise, type ClientState, type Store } from './types.js'

/** Consecutive failed decisions that open the circuit. */
export const FAILURES_TO_OPEN = 3

export interface FailoverOptions {
  primary: RedisStore
  /** The local limiter for mode `local`. */
  local: Store
  failureMode: StoreFailureMode
  probeIntervalMs: number
  log: FastifyBaseLogger
}

const FALLBACK_MODE: Record<StoreFailureMode, string> = { local: 'local-fallback', open: 'fail-open', closed: 'fail-closed' }

export class FailoverStore implements Store {
  readonly kind = 'redis'
  private failures = 0
  private open = false
  private probe: NodeJS.Timeout | undefined
  private readonly onSuccess = (d: Decision[]): Decision[] => { this.failures = 0; return d }
  /** Decisions answered by the failure mode since the circuit last opened. */
  fallbackDecisions = 0

  constructor (private readonly opts: FailoverOptions) {}

  consume (client: string, policies: readonly Policy[], cost: number, subjects?: readonly string[]): Decision[] | Promise<Decision[]> {
    if (this.open) return this.opts.primary.deniedLocally(client, policies, cost, subjects) ?? this.fallback(client, policies, cost, subjects)
    const result = this.opts.primary.consume(client, policies, cost, subjects)
    // A synchronous answer is a local denial: Redis was not asked.
    if (!isPromise(result)) return result
    return result.then(this.onSuccess, (err: unknown) => {
      this.failed(err)
      return this.fallback(client, policies, cost, subjects)
    })
  }

  private fallback (client: string, policies: readonly Policy[], cost: number, subjects?: readonly string[]): Decision[] | Promise<Decision[]> {
    this.fallbackDecisions++
    switch (this.opts.failureMode) {
      case 'local':
        return this.opts.local.consume(client, policies, cost, subjects)
      case 'open':
        // Nothing is known: report full buckets rather than invent a count.
        return policies.map(policy => ({ policy, allowed: true, remaining: policy.burst, resetMs: 0, retryAfterMs: 0, delayMs: 0 }))
      case 'closed':
        throw new StoreUnavailableError()
    }
  }

  private failed (err: unknown): void {
    this.failures++
    if (this.open || this.failures < FAILURES_TO_OPEN) return
    this.open = true
    this.fallbackDecisions = 0
    this.opts.log.warn({ err, mode: FALLBACK_MODE[this.opts.failureMode] }, 'redis unavailable: deciding with STORE_FAILURE_MODE until it answers again')
    this.scheduleProbe()
  }

  /** One probe at a time: the next is scheduled only once this one has failed. */
  private scheduleProbe (): void {
    this.probe = setTimeout(() => {
      this.opts.primary.ping().then(() => {
        this.open = false
        this.failures = 0
        this.probe = undefined
        this.opts.log.info({ mode: 'redis', fallbackDecisions: this.fallbackDecisions }, 'redis answers again: shared limits resumed')
      }, () => this.scheduleProbe())
    }, this.opts.probeIntervalMs)
    this.probe.unref()
  }

  /** The shared state (Redis): what every instance decides with. */
  inspect (client: string, policies: readonly Policy[]): Promise<ClientState> {
    return this.opts.primary.inspect(client, policies)
  }

  /** In Redis and in the local fallback alike, so an outage does not bring it back. */
  async reset (client: string, policies: readonly Policy[]): Promise<void> {
    await this.opts.local.reset(client, policies)
    await this.opts.primary.reset(client, policies)
  }

  async ban (client: string, ms: number): Promise<void> {
    await this.opts.local.ban(client, ms)
    await this.opts.primary.ban(client, ms)
  }

  async unban (client: string): Promise<void> {
    await this.opts.local.unban(client)
    await this.opts.primary.unban(client)
  }

  size (): number {
    return this.opts.local.size()
  }

  ready (): boolean {
    return !this.open || this.opts.failureMode !== 'closed'
  }

  mode (): string {
    return this.open ? FALLBACK_MODE[this.opts.failureMode] : 'redis'
  }

  async close (): Promise<void> {
    clearTimeout(this.probe)
    this.open = false
    await this.opts.primary.close()
    await this.opts.local.close()
  }
}
