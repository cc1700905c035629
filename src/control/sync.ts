/**
 * With STORE=redis, settings changed through the admin API reach every instance: the
 * change is stored with a version (INCR) and announced on a channel, in one script; each
 * instance listens (its own subscriber connection) and also checks the stored version
 * every few seconds, so a missed message (a reconnect) or a restarted instance still
 * catches up. Resets and unbans are announced too, and counted where the check looks,
 * so no instance keeps refusing a client from its local deny cache.
 */
import type { FastifyBaseLogger } from 'fastify'
import { RedisSettingsChannel, type SettingsChannel } from '../store/redis/settings-channel.js'
import { ThreadSettingsChannel, type SettingsShare } from '../store/shared/settings-channel.js'
import type { RedisStore } from '../store/redis/store.js'
import type { Config } from '../config/index.js'
import type { LimitsManager } from './manager.js'
import type { RuntimeSettings } from './settings.js'

/** How often the stored version is checked besides the announcements. */
export const SYNC_POLL_MS = 5_000

interface StoredSettings { version: number, settings: RuntimeSettings, actor: string, at: string }

/** What /admin/config shows of the fleet's settings as this instance last saw them. */
export interface FleetStatus {
  /** The version Redis held at the last check (null: none stored; undefined: never read). */
  storedVersion: number | null | undefined
  /** Whether the settings in force here are the ones Redis holds. */
  inSync: boolean
  /** When Redis was last read (ISO), or null. */
  checkedAt: string | null
}
type Message = { type: 'settings', version: number } | { type: 'forget' }

export interface SyncOptions {
  channel: SettingsChannel
  manager: LimitsManager
  log: FastifyBaseLogger
  pollMs?: number
  /** How long start() waits for its subscription (REDIS_CONNECT_TIMEOUT_MS). */
  connectTimeoutMs: number
}

export class SettingsSync {
  private timer: NodeJS.Timeout | undefined
  private loading: Promise<void> | undefined

  constructor (private readonly opts: SyncOptions) {}

  /** Who made the settings in force here, and when (put back with them if Redis loses them). */
  private current: { version: number, actor: string, at: string } | undefined
  /** A version that did not validate here: not logged again at every check. */
  private rejected = 0
  private fleet: FleetStatus = { storedVersion: undefined, inSync: true, checkedAt: null }
  /** The fleet's count of resets and unbans at the last check (undefined: never read). */
  private forgets: number | undefined

  get status (): FleetStatus {
    return this.fleet
  }

  /** Subscribes, loads the fleet's settings, and starts checking the version. */
  async start (): Promise<void> {
    // The version check runs whatever happens below: a missed announcement, or a
    // subscription not made yet, is caught up with by the next check.
    this.timer = setInterval(() => { this.load().catch(() => {}) }, this.opts.pollMs ?? SYNC_POLL_MS)
    this.timer.unref()
    // After a reconnect the subscription is made again by itself. Reconnected (Redis
    // restarted, perhaps empty): check at once rather than at the next poll.
    await this.opts.channel.subscribe(text => this.onMessage(text), () => { this.load().catch(() => {}) }, this.opts.connectTimeoutMs)
    await this.load()
  }

  private onMessage (text: string): void {
    let message: Message
    try {
      message = JSON.parse(text) as Message
    } catch {
      return
    }
    if (message.type === 'forget') this.opts.channel.forgetLocally()
    else if (message.version > this.opts.manager.version) this.load().catch(() => {})
  }

  /**
   * Compares the stored settings with those in force and mends any difference: newer
   * stored settings are applied; an older stored version, or none (Redis lost them), gets
   * ours back; the same version with other settings (instances that drifted apart while
   * Redis was away) takes Redis's, so every instance ends with one set.
   */
  load (): Promise<void> {
    this.loading ??= (async () => {
      try {
        const { settings: text, forgets } = await this.opts.channel.read()
        // A reset or unban made since the last check, whose announcement may not have come.
        if (this.forgets !== undefined && forgets !== this.forgets) this.opts.channel.forgetLocally()
        this.forgets = forgets
        const manager = this.opts.manager
        const stored = text === null ? undefined : JSON.parse(text) as StoredSettings
        this.fleet = { storedVersion: stored?.version ?? null, inSync: this.fleet.inSync, checkedAt: new Date().toISOString() }
        if (stored === undefined || stored.version < manager.version) {
          if (manager.version === 0) {
            this.fleet.inSync = true
            return
          }
          this.opts.log.warn({ version: manager.version, stored: stored?.version ?? null }, 'the fleet settings in Redis are older than those in force here (Redis restarted or was flushed): storing ours again')
          await this.reseed()
          return
        }
        const same = stored.version === manager.version && JSON.stringify(stored.settings) === JSON.stringify(manager.runtimeSettings)
        if (same || stored.version === this.rejected) {
          this.fleet.inSync = same
          return
        }
        if (stored.version === manager.version) {
          this.opts.log.warn({ version: stored.version, actor: stored.actor, at: stored.at }, 'the settings in force here differ from the fleet\'s of the same version: taking the fleet\'s')
        }
        try {
          manager.apply(stored.settings, stored.version)
          this.current = { version: stored.version, actor: stored.actor, at: stored.at }
          this.fleet.inSync = true
          this.opts.log.info({ version: stored.version, actor: stored.actor, at: stored.at }, 'runtime settings applied from the fleet')
        } catch (err) {
          this.rejected = stored.version
          this.fleet.inSync = false
          this.opts.log.error({ version: stored.version, reason: (err as Error).message }, 'runtime settings from the fleet do not validate here; the settings in force stay')
        }
      } finally {
        this.loading = undefined
      }
    })()
    return this.loading
  }

  private async reseed (): Promise<void> {
    const manager = this.opts.manager
    const made = this.current?.version === manager.version ? this.current : { actor: 'reseed', at: new Date().toISOString() }
    const doc = JSON.stringify({ version: manager.version, settings: manager.runtimeSettings, actor: made.actor, at: made.at })
    await this.opts.channel.reseed(doc, manager.version)
    this.fleet.storedVersion = manager.version
    this.fleet.inSync = true
  }

  /** Stores and announces new settings; resolves to their version. */
  async publish (settings: RuntimeSettings, actor: string): Promise<number> {
    const at = new Date().toISOString()
    const body = JSON.stringify({ settings, actor, at }).slice(1, -1)
    const version = await this.opts.channel.publish(body, this.opts.manager.version)
    this.current = { version, actor, at }
    this.fleet = { storedVersion: version, inSync: true, checkedAt: new Date().toISOString() }
    return version
  }

  async close (): Promise<void> {
    clearInterval(this.timer)
    this.opts.channel.close()
  }
}

/**
 * The fleet's settings sync on this Redis store, started: subscribed and caught up, or
 * (Redis failing just now) left to its periodic version check, which catches up later.
 */
export async function startSettingsSync (store: RedisStore, config: Pick<Config, 'redis'>, manager: LimitsManager, log: FastifyBaseLogger): Promise<SettingsSync> {
  const sync = new SettingsSync({ channel: new RedisSettingsChannel(store, config.redis.keyPrefix), manager, connectTimeoutMs: config.redis.connectTimeoutMs, log })
  await sync.start().catch((err: unknown) => log.warn({ err }, 'settings sync: could not subscribe yet; checking the stored version periodically'))
  return sync
}

/**
 * The settings sync the gateway needs, started: the fleet's through Redis (STORE=redis),
 * else that of one process's worker threads (WORKERS > 1, memory store), else none. Redis
 * answered a moment ago; if it fails now, the version check catches up later.
 */
export async function startSync (redis: RedisStore | undefined, config: Pick<Config, 'redis'>, manager: LimitsManager, log: FastifyBaseLogger, threads: SettingsShare | undefined): Promise<SettingsSync | undefined> {
  if (redis !== undefined) return await startSettingsSync(redis, config, manager, log)
  if (threads === undefined) return undefined
  const sync = new SettingsSync({ channel: new ThreadSettingsChannel(threads), manager, connectTimeoutMs: 0, log })
  await sync.start()
  return sync
}
