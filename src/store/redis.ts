/**
 * The shared store: every decision is one EVALSHA of CONSUME_LUA covering all the limits
 * of the request, so any number of gateway instances enforce one limit together. Time is
 * Redis TIME, so instances with skewed clocks agree.
 *
 * Key layout: `${prefix}{${tag}}:${policy}` — the {tag} puts all keys of one decision in
 * one Redis Cluster hash slot. Normally the tag is the client, spreading clients over the
 * cluster; with a shared (global) limit every decision touches the global key, so all
 * keys share its slot, and that one slot carries the traffic (as it must: the global
 * bucket is one counter).
 *
 * A client Redis has refused until T is refused locally until T without another round
 * trip (the deny cache): rejections do not move a bucket, so nobody can be admitted
 * earlier, whatever other instances do meanwhile.
 */
import { Redis, Cluster } from 'ioredis'
import { LRUCache } from 'lru-cache'
import type { Clock } from '../clock.js'
import { systemClock } from '../clock.js'
import type { RedisSettings } from '../config/index.js'
import type { Decision } from '../limiter/decision.js'
import type { Policy } from '../limiter/policy.js'
import { StoreConnectError } from '../errors.js'
import { CONSUME_LUA } from './redis-scripts.js'
import type { Store } from './types.js'

/** Clients remembered by the deny cache at most. */
export const DENY_CACHE_MAX = 100_000
/** Delay before reconnecting grows by this per attempt, up to the maximum. */
export const RECONNECT_STEP_MS = 100
export const RECONNECT_MAX_MS = 2_000

type Client = Redis | Cluster
type ConsumeCommand = (numKeys: number, ...args: Array<string | number>) => Promise<Array<number | string>>

interface Denial {
  /** Local clock time at which the rejection was decided. */
  at: number
  until: number
  /** A request costing less may still pass: the denial holds only from this cost up. */
  cost: number
  policies: readonly Policy[]
  decisions: Decision[]
}

export interface RedisStoreOptions {
  settings: RedisSettings
  /** Only for tests: decide with this clock instead of Redis TIME. */
  decisionClock?: Clock
  /** Measures how long a denial lasts locally (durations only; skew does not matter). */
  clock?: Clock
}

/** Builds the ioredis client for one server, a Cluster or Sentinel, failing fast. */
export function createRedisClient (settings: RedisSettings): Client {
  const common = {
    // Bounds what a dead or stalled Redis costs a request (measured worst: 2-3x this).
    commandTimeout: settings.timeoutMs,
    // Never queue commands while disconnected: fail at once, the failover store decides.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    connectTimeout: Math.min(settings.connectTimeoutMs, 10_000),
    retryStrategy: (attempt: number) => Math.min(attempt * RECONNECT_STEP_MS, RECONNECT_MAX_MS),
    enableAutoPipelining: true,
    lazyConnect: true
  }
  const url = new URL(settings.url)
  const auth = {
    ...(url.username ? { username: decodeURIComponent(url.username) } : {}),
    ...(url.password ? { password: decodeURIComponent(url.password) } : {}),
    /* c8 ignore next -- TLS needs a TLS-built redis-server and certificates; ioredis does the work */
    ...(url.protocol === 'rediss:' ? { tls: {} } : {})
  }
  if (settings.clusterNodes.length > 0) {
    return new Cluster(settings.clusterNodes.map(n => ({ host: n.host, port: n.port })), {
      enableOfflineQueue: false,
      enableAutoPipelining: true,
      lazyConnect: true,
      scaleReads: 'master',
      clusterRetryStrategy: (attempt: number) => Math.min(attempt * RECONNECT_STEP_MS, RECONNECT_MAX_MS),
      redisOptions: { ...common, ...auth }
    })
  }
  if (settings.sentinels.length > 0) {
    return new Redis({ ...common, ...auth, sentinels: settings.sentinels.map(s => ({ host: s.host, port: s.port })), name: settings.sentinelName })
  }
  return new Redis(settings.url, common)
}

function samePolicies (a: readonly Policy[], b: readonly Policy[]): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

function escapeTag (subject: string): string {
  // A brace in a client-supplied id would end the hash tag early; keep tags unambiguous.
  return subject.indexOf('{') === -1 && subject.indexOf('}') === -1 ? subject : subject.replace(/\{/g, '%7B').replace(/\}/g, '%7D')
}

export class RedisStore implements Store {
  readonly kind = 'redis'
  readonly client: Client
  private readonly consumeCommand: ConsumeCommand
  private readonly prefix: string
  private readonly denials: LRUCache<string, Denial>
  private readonly clock: Clock
  private readonly decisionClock: Clock | undefined
  private readonly settings: RedisSettings

  constructor (opts: RedisStoreOptions) {
    this.settings = opts.settings
    this.prefix = opts.settings.keyPrefix
    this.clock = opts.clock ?? systemClock
    this.decisionClock = opts.decisionClock
    this.client = createRedisClient(opts.settings)
    this.client.defineCommand('rlConsume', { lua: CONSUME_LUA })
    this.consumeCommand = (this.client as unknown as { rlConsume: ConsumeCommand }).rlConsume.bind(this.client)
    this.denials = new LRUCache({ max: DENY_CACHE_MAX })
    // Connection errors surface through failed commands; the event only needs a listener
    // so that ioredis does not report them as unhandled.
    this.client.on('error', () => {})
  }

  /** Connects, waiting at most REDIS_CONNECT_TIMEOUT_MS; says what failed otherwise. */
  async connect (): Promise<void> {
    const { connectTimeoutMs } = this.settings
    const client = this.client
    await new Promise<void>((resolve, reject) => {
      let lastError = 'no answer'
      const onError = (err: Error) => { lastError = err.message }
      const done = () => {
        clearTimeout(timer)
        client.off('error', onError)
        client.off('ready', onReady)
      }
      const onReady = () => { done(); resolve() }
      const timer = setTimeout(() => {
        done()
        reject(new StoreConnectError(connectTimeoutMs, lastError))
      }, connectTimeoutMs)
      client.on('error', onError)
      client.once('ready', onReady)
      // The first attempt may fail while ioredis keeps retrying: 'ready' decides.
      client.connect().catch(onError)
    })
  }

  /** The Redis keys of one decision, all in one hash slot. */
  keys (subject: string, policies: readonly Policy[]): string[] {
    let shared = false
    for (const p of policies) if (p.shared) shared = true
    const s = escapeTag(subject)
    const keys: string[] = new Array(policies.length)
    for (let i = 0; i < policies.length; i++) {
      const p = policies[i]!
      keys[i] = shared
        ? (p.shared ? `${this.prefix}{*}:${p.name}` : `${this.prefix}{*}:${p.name}:${s}`)
        : `${this.prefix}{${s}}:${p.name}`
    }
    return keys
  }

  consume (subject: string, policies: readonly Policy[], cost: number): Decision[] | Promise<Decision[]> {
    const keys = this.keys(subject, policies)
    const denied = this.denied(keys, policies, cost)
    if (denied !== undefined) return denied

    const args: Array<string | number> = [this.decisionClock ? this.decisionClock.now() : '', cost]
    for (const p of policies) args.push(p.intervalMs, p.burst)
    return this.consumeCommand(keys.length, ...keys, ...args).then(reply => this.decide(keys, policies, cost, reply))
  }

  private decide (keys: string[], policies: readonly Policy[], cost: number, reply: Array<number | string>): Decision[] {
    const out: Decision[] = new Array(policies.length)
    let longest = -1
    for (let i = 0; i < policies.length; i++) {
      const d: Decision = {
        policy: policies[i]!,
        allowed: reply[4 * i] === 1,
        remaining: Number(reply[4 * i + 1]),
        resetMs: Number(reply[4 * i + 2]),
        retryAfterMs: Number(reply[4 * i + 3])
      }
      out[i] = d
      if (!d.allowed && (longest === -1 || d.retryAfterMs > out[longest]!.retryAfterMs)) longest = i
    }
    if (longest !== -1) {
      const at = this.clock.now()
      this.denials.set(keys[longest]!, { at, until: at + out[longest]!.retryAfterMs, cost, policies, decisions: out })
    }
    return out
  }

  /** A still-valid local denial for any of these keys, with its durations brought up to now. */
  private denied (keys: string[], policies: readonly Policy[], cost: number): Decision[] | undefined {
    if (this.denials.size === 0) return undefined
    for (let i = 0; i < keys.length; i++) {
      const denial = this.denials.get(keys[i]!)
      if (denial === undefined || cost < denial.cost) continue
      const now = this.clock.now()
      if (now >= denial.until) {
        this.denials.delete(keys[i]!)
        continue
      }
      // Only the same set of limits can reuse the whole answer; any other set asks Redis.
      if (!samePolicies(denial.policies, policies)) continue
      const elapsed = now - denial.at
      return denial.decisions.map(d => ({ ...d, resetMs: Math.max(0, d.resetMs - elapsed), retryAfterMs: Math.max(0, d.retryAfterMs - elapsed) }))
    }
    return undefined
  }

  /**
   * The local denial for this request, if Redis already refused it until an instant not
   * yet come; exact knowledge, usable even while Redis is unreachable.
   */
  deniedLocally (subject: string, policies: readonly Policy[], cost: number): Decision[] | undefined {
    return this.denied(this.keys(subject, policies), policies, cost)
  }

  /** One round trip that proves Redis answers (used to probe for recovery). */
  async ping (): Promise<void> {
    await this.client.ping()
  }

  size (): number {
    return this.denials.size
  }

  ready (): boolean {
    return this.client.status === 'ready'
  }

  mode (): string {
    return 'redis'
  }

  async close (): Promise<void> {
    this.denials.clear()
    try {
      await this.client.quit()
    } catch {
      this.client.disconnect()
    }
  }
}
