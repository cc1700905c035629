/**
 * The shared store: every decision is one EVALSHA of CONSUME_LUA covering all the limits
 * of the request, so any number of gateway instances enforce one limit together. Time is
 * Redis TIME, so instances with skewed clocks agree.
 *
 * This module decides and administers; beside it, each job has its own: the connection
 * (client.ts), where keys live (keys.ts), the scripts (scripts.ts) and their wire layout
 * (protocol.ts), in-flight leases (leases.ts), the usage ledger (ledger.ts), admin writes
 * with a deadline (admin-write.ts) and the fleet's settings channel (settings-channel.ts).
 *
 * A client Redis has refused until T is refused locally until T without another round
 * trip (../deny-cache.ts). With bans on, refusals must reach Redis to be counted, so the
 * deny cache holds bans only: a refused client costs a round trip per request until it is
 * banned, then none.
 */
import calculateSlot from 'cluster-key-slot'
import { Cluster, Command } from 'ioredis'
import type { Clock } from '../../core/clock.js'
import { systemClock } from '../../core/clock.js'
import type { RedisSettings } from '../../config/index.js'
import type { Decision } from '../../core/decision.js'
import type { ConcurrencyLimit, Policy, SlotRequest } from '../../core/policy.js'
import { StoreConnectError } from '../../errors.js'
import { CONSUME_LUA, SETTLE_LUA } from './scripts.js'
import { BAN_LUA, FORGET_LUA, INSPECT_LUA } from './admin-scripts.js'
import { DenyCache } from '../deny-cache.js'
import { adminWrite } from './admin-write.js'
import { createRedisClient, ignoreReply, WriteCork, type RedisClient } from './client.js'
import { escapeTag, KeyLayout, subjectOf } from './keys.js'
import { Leases } from './leases.js'
import { RedisLedger } from './ledger.js'
import { ScriptProtocol } from './protocol.js'
import type { BanSettings, ClientState, DecisionWatcher, SharedStore } from '../types.js'
import type { UsageMark, UsageRow, UsageTotal } from '../usage.js'


/** CONCURRENCY_LEASE_MS's default (config), for a store built without it. */
const DEFAULT_LEASE_MS = 60_000


/**
 * One decision's EVALSHA. Its reply becomes the decisions inside ioredis's own settling of
 * the command (transformReply), so the promise the limiter waits on is the command's, and
 * settles in one hop from the socket's data (ioredis's script helper, a .then to decode
 * and the failover's .then made four). A failure is answered the same way: the watcher's
 * decisions resolve it; a script Redis has lost (restart, SCRIPT FLUSH) is sent again once
 * as EVAL, which loads it.
 */
class DecisionCommand extends Command {
  retried = false
  fallback: Decision[] | Promise<Decision[]> | undefined

  constructor (
    readonly store: RedisStore,
    readonly client: string,
    readonly redisKeys: string[],
    readonly policies: readonly Policy[],
    readonly cost: number,
    readonly subjects: readonly string[] | undefined,
    /** The in-flight limits' slots asked for, and their keys (the last of redisKeys). */
    readonly slots: SlotRequest | undefined,
    readonly slotKeys: string[] | undefined,
    args: string[]
  ) {
    super('evalsha', args)
    const reject = this.reject
    // A closure, not a method: ioredis's Cluster calls the reject it wraps unbound.
    this.reject = (err: Error) => store.commandFailed(this, err, reject)
  }

  override transformReply (reply: Buffer | Buffer[]): never {
    return (this.fallback ?? this.store.decisionsOf(this, reply as unknown as number[])) as never
  }
}

export interface RedisStoreOptions {
  settings: RedisSettings
  bans?: BanSettings
  /**
   * Put every key in one hash slot, `{*}`. Needed when one decision mixes subjects: a
   * shared (global) limit, or route rules keyed by another identity source. Fixed for
   * the life of the store, so a key never moves. On a single server or Sentinel the slot
   * does not matter; on a Cluster one shard then carries all limiter traffic.
   */
  singleSlot?: boolean
  /** Only for tests: decide with this clock instead of Redis TIME. */
  decisionClock?: Clock
  /** Measures how long a denial lasts locally (durations only; skew does not matter). */
  clock?: Clock
  /** How long an in-flight slot lives without renewal (CONCURRENCY_LEASE_MS). */
  leaseMs?: number
}

export class RedisStore implements SharedStore {
  readonly kind = 'redis'
  readonly client: RedisClient
  /** Told of each decision's fate (the failover store), if anyone is. */
  watcher: DecisionWatcher | undefined
  /** The scripts' KEYS/ARGV layout and replies (protocol.ts). */
  private readonly protocol: ScriptProtocol
  /** This turn's writes, held to leave in one syscall. */
  private readonly cork: WriteCork
  /** Where each key lives (keys.ts). */
  private readonly layout: KeyLayout
  /** What Redis refused until an instant not yet come, answered here (deny-cache.ts). */
  private readonly denials: DenyCache
  private readonly clock: Clock
  private readonly decisionClock: Clock | undefined
  private readonly settings: RedisSettings
  readonly singleSlot: boolean
  /** In-flight slots this instance holds, renewed until released (leases.ts). */
  private readonly leases: Leases
  /** Ledger lines' refusals answered here, not yet added in Redis: count and the line's TTL. */
  /** The usage ledger's reads, and the refusals answered here on their way to it. */
  private readonly ledger: RedisLedger

  constructor (opts: RedisStoreOptions) {
    this.settings = opts.settings
    this.clock = opts.clock ?? systemClock
    this.decisionClock = opts.decisionClock
    this.client = createRedisClient(opts.settings)
    this.cork = new WriteCork(this.client)
    this.client.defineCommand('rlInspect', { lua: INSPECT_LUA })
    this.client.defineCommand('rlSettle', { lua: SETTLE_LUA })
    this.denials = new DenyCache(this.clock, opts.bans !== undefined)
    const leaseMs = opts.leaseMs ?? DEFAULT_LEASE_MS
    this.protocol = new ScriptProtocol(opts.bans, String(leaseMs))
    this.singleSlot = opts.singleSlot ?? false
    this.layout = new KeyLayout(opts.settings.keyPrefix, this.singleSlot)
    this.ledger = new RedisLedger(this.client, this.layout, this.cork)
    this.leases = new Leases(this.client, this.cork, leaseMs)
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

  consume (client: string, policies: readonly Policy[], cost: number, subjects?: readonly string[], slots?: SlotRequest, usage?: UsageMark): Decision[] | Promise<Decision[]> {
    // The deny cache needs only the limits' keys: a refused client builds no other.
    const c = escapeTag(client)
    const keys = this.layout.policyKeys(c, policies, subjects)
    const denied = this.denials.refusal(client, keys, policies, cost)
    if (denied !== undefined) {
      // Refused here, not in Redis: the ledger hears of it with the next flush.
      if (usage !== undefined) this.ledger.refusedHere(this.layout.usageKey(c, usage.day), usage.ttlMs)
      return denied
    }
    this.layout.pushBanKeys(keys, c)
    let slotKeys: string[] | undefined
    if (slots !== undefined) {
      slotKeys = this.layout.slotKeysOf(client, slots.limits, slots.subjects)
      for (const key of slotKeys) keys.push(key)
    }
    if (usage !== undefined) keys.push(this.layout.usageKey(c, usage.day))
    const command = new DecisionCommand(this, client, keys, policies, cost, subjects, slots, slotKeys, this.protocol.consumeArgs(keys, policies, cost, slots, usage, this.clockArg(), this.clock.now()))
    this.cork.cork()
    return this.client.sendCommand(command) as Promise<Decision[]>
  }

  usage (client: string, days: readonly string[]): Promise<UsageRow[]> {
    return this.ledger.usage(client, days)
  }

  topUsage (days: readonly string[], limit: number): Promise<UsageTotal[]> {
    return this.ledger.topUsage(days, limit)
  }

  commandFailed (command: DecisionCommand, err: Error, reject: (err: Error) => void): void {
    if (!command.retried && err.message.startsWith('NOSCRIPT')) {
      command.retried = true
      command.name = 'eval'
      command.args[0] = CONSUME_LUA
      this.client.sendCommand(command)
      return
    }
    const watcher = this.watcher
    if (watcher === undefined) {
      reject(err)
      return
    }
    try {
      command.fallback = watcher.failed(err, command.client, command.policies, command.cost, command.subjects, command.slots)
    } catch (thrown) {
      reject(thrown as Error)
      return
    }
    command.resolve(null)
  }

  /** Redis's reply to a decision (CONSUME_LUA's integers) as the limiter's decisions. */
  decisionsOf (command: DecisionCommand, reply: number[]): Decision[] {
    const { client, policies } = command
    this.watcher?.answered(client, policies, command.subjects)
    const out = this.protocol.decisions(reply, policies, command.slots)
    // Admitted with in-flight slots: the script took them; held (and renewed) until released.
    if (this.denials.answered(client, command.redisKeys, policies, command.cost, out) && command.slots !== undefined) {
      this.leases.hold(command.slots.lease, command.slotKeys!)
    }
    return out
  }

  /** A still-valid local denial for any of these keys, with its durations brought up to now. */
  /**
   * The local denial for this request, if Redis already refused it until an instant not
   * yet come; exact knowledge, usable even while Redis is unreachable.
   */
  deniedLocally (client: string, policies: readonly Policy[], cost: number, subjects?: readonly string[]): Decision[] | undefined {
    return this.denials.refusal(client, this.layout.policyKeys(escapeTag(client), policies, subjects), policies, cost)
  }

  /**
   * Gives back a request's slots (the script's leases); a lease this store does not hold is
   * ignored (leases.ts).
   */
  release (_client: string, slots: SlotRequest): void {
    this.leases.release(slots.lease)
  }

  /**
   * One SETTLE_LUA call for the policies with a difference, written with the turn's other
   * commands; nothing waits for it (one that fails leaves the up-front charge standing). A
   * refund drops this instance's cached denial of those keys.
   */
  settle (client: string, policies: readonly Policy[], deltas: readonly number[], subjects: readonly string[] | undefined, chargedAt: number): void {
    const c = escapeTag(client)
    const keys: string[] = []
    // When the charge was is told as how long ago, by this gateway's clock: a duration,
    // which the script takes from Redis TIME, so a skewed clock finds the charge's window.
    const now = this.clock.now()
    const args = this.protocol.settleArgs(this.clockArg(), now - chargedAt)
    for (let i = 0; i < policies.length; i++) {
      const delta = deltas[i]!
      if (delta === 0) continue
      const p = policies[i]!
      const key = this.layout.keyOf(p, subjectOf(c, subjects, i))
      keys.push(key)
      // A calendar period: the one around the charge (a refund) or now (a post-charge).
      this.protocol.pushSettle(args, p, delta < 0 ? chargedAt : now, delta)
      if (delta < 0) this.denials.drop(key)
    }
    this.cork.cork()
    const settle = (this.client as unknown as { rlSettle: (n: number, ...a: string[]) => Promise<number> }).rlSettle
    settle.call(this.client, keys.length, ...keys, ...args).catch(ignoreReply)
  }

  async inspect (client: string, policies: readonly Policy[], slots: readonly ConcurrencyLimit[] = []): Promise<ClientState> {
    const keys = this.layout.clientKeys(client, policies)
    for (const key of this.layout.slotKeysOf(client, slots, undefined)) keys.push(key)
    const reply = await (this.client as unknown as { rlInspect: (n: number, ...k: string[]) => Promise<string[]> }).rlInspect(keys.length, ...keys, ...this.protocol.inspectArgs(this.clockArg(), slots.length))
    return this.protocol.clientState(reply, policies, slots)
  }

  async reset (client: string, policies: readonly Policy[]): Promise<void> {
    const keys = this.layout.clientKeys(client, policies.filter(p => !p.shared))
    // Everything but the ban itself: the limits' state and the refusal count.
    keys.splice(keys.length - 2, 1)
    await adminWrite(this.client, `the reset of ${client}`, FORGET_LUA, keys, [this.layout.controlChannel], this.timeoutMs)
    await this.forgotten()
  }

  async ban (client: string, ms: number): Promise<void> {
    await adminWrite(this.client, `the ban of ${client}`, BAN_LUA, this.layout.banKeys(escapeTag(client)), [this.clockArg(), ms], this.timeoutMs)
  }

  async unban (client: string): Promise<void> {
    await adminWrite(this.client, `the unban of ${client}`, FORGET_LUA, this.layout.banKeys(escapeTag(client)), [this.layout.controlChannel], this.timeoutMs)
    await this.forgotten()
  }

  /**
   * After a reset or unban (applied, and announced by its script): forgets here, and counts
   * it where every instance's settings check looks (another slot on a Cluster, so a
   * command of its own). Should that fail, the announcement alone tells the fleet.
   */
  private async forgotten (): Promise<void> {
    this.forget()
    await this.client.incr(this.layout.forgetsKey).catch(ignoreReply)
  }

  /**
   * Drops every local denial and ban: after a reset or unban (here or on another instance)
   * they may no longer hold. The next request of each client asks Redis again.
   */
  forget (): void {
    this.denials.clear()
  }

  /** The key a decision is routed by (its first; all its keys share one slot). */
  firstKey (client: string, policies: readonly Policy[], subjects?: readonly string[]): string {
    return this.layout.firstKey(client, policies, subjects)
  }

  /** The node that owns a decision's keys (shardOf its first key); '' without building it off a Cluster. */
  shardFor (client: string, policies: readonly Policy[], subjects?: readonly string[]): string {
    return this.client instanceof Cluster ? this.shardOf(this.firstKey(client, policies, subjects)) : ''
  }

  /**
   * The node that owns a key, as this client knows the cluster now (`host:port`); '' for a
   * single Redis or Sentinel, where one server owns every key.
   */
  shardOf (key: string): string {
    const client = this.client
    if (!(client instanceof Cluster)) return ''
    // The slot map is loaded before the store is ready (connect() waits for 'ready'); a slot
    // missing from it would be a cluster not fully covered, handled like a node of its own.
    /* c8 ignore next */
    return client.slots[calculateSlot(key)]?.[0] ?? ''
  }

  /**
   * Whether Redis serves this key now. On a Cluster the slot map is asked for again first,
   * so a replica promoted while no decision reached Redis is found.
   */
  async probe (key: string): Promise<void> {
    const client = this.client
    if (!(client instanceof Cluster)) {
      await client.ping()
      return
    }
    await new Promise<void>(resolve => client.refreshSlotsCache(() => resolve()))
    await client.exists(key)
  }

  /** The scripts' ARGV[1]: '' (Redis TIME), or the test clock's now. */
  private clockArg (): string {
    return this.decisionClock === undefined ? '' : String(this.decisionClock.now())
  }

  /** REDIS_TIMEOUT_MS: how long a command may take. */
  get timeoutMs (): number {
    return this.settings.timeoutMs
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
    this.leases.close()
    this.ledger.close()
    this.denials.clear()
    // QUIT only on a working connection: on one still (re)connecting ioredis would first
    // wait for the connection it is retrying, and a gateway that could not start would
    // linger seconds after saying so.
    if (this.client.status !== 'ready') {
      this.client.disconnect()
      return
    }
    try {
      await this.client.quit()
    /* c8 ignore next 3 -- only when the connection drops between the status check and QUIT */
    } catch {
      this.client.disconnect()
    }
  }
}
