/**
 * With STORE=redis, settings changed through the admin API reach every instance: the
 * change is stored with a version (INCR) and announced on a channel, in one script; each
 * instance listens (its own subscriber connection) and also checks the stored version
 * every few seconds, so a missed message (a reconnect) or a restarted instance still
 * catches up. Resets and unbans are announced too, so no instance keeps refusing a
 * client from its local deny cache.
 */
import type { FastifyBaseLogger } from 'fastify'
import { Cluster, type Redis } from 'ioredis'
import type { RedisStore } from '../store/redis.js'
import type { LimitsManager } from './manager.js'
import type { RuntimeSettings } from './settings.js'

/** How often the stored version is checked besides the announcements. */
export const SYNC_POLL_MS = 5_000

/**
 * Stores the settings under a new version and announces it (one slot: `{control}`). The
 * version is above the publisher's own (ARGV[3]) even when Redis lost its keys (a restart
 * without persistence): versions never repeat, so no instance takes a new change for one
 * it already has.
 */
const PUBLISH_LUA = `
local v = redis.call('INCR', KEYS[1])
local floor = tonumber(ARGV[3])
if v <= floor then
  v = floor + 1
  redis.call('SET', KEYS[1], v)
end
redis.call('SET', KEYS[2], '{"version":' .. v .. ',' .. ARGV[1] .. '}')
redis.call('PUBLISH', ARGV[2], '{"type":"settings","version":' .. v .. '}')
return v
`

/**
 * Stores settings under the version they already have, when Redis holds an older one or
 * none (it lost them): the instances that kept them put them back, and those that never
 * saw them catch up. Returns 1 when stored, 0 when Redis already had that version or newer.
 */
const RESEED_LUA = `
local stored = tonumber(redis.call('GET', KEYS[1]) or '0')
local v = tonumber(ARGV[3])
if stored >= v then return 0 end
redis.call('SET', KEYS[1], v)
redis.call('SET', KEYS[2], ARGV[1])
redis.call('PUBLISH', ARGV[2], '{"type":"settings","version":' .. v .. '}')
return 1
`

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
  store: RedisStore
  manager: LimitsManager
  prefix: string
  log: FastifyBaseLogger
  pollMs?: number
  /** How long start() waits for its subscription (REDIS_CONNECT_TIMEOUT_MS). */
  connectTimeoutMs: number
}

export class SettingsSync {
  private readonly subscriber: Redis | Cluster
  private readonly versionKey: string
  private readonly settingsKey: string
  private readonly channel: string
  private timer: NodeJS.Timeout | undefined
  private loading: Promise<void> | undefined

  constructor (private readonly opts: SyncOptions) {
    this.versionKey = `${opts.prefix}{control}:version`
    this.settingsKey = `${opts.prefix}{control}:settings`
    this.channel = `${opts.prefix}control`
    // A connection of its own: a subscribed connection can issue nothing else.
    const client = opts.store.client
    this.subscriber = client instanceof Cluster ? client.duplicate() : client.duplicate()
    this.subscriber.on('error', () => {})
    opts.store.client.defineCommand('rlPublishSettings', { numberOfKeys: 2, lua: PUBLISH_LUA })
    opts.store.client.defineCommand('rlReseedSettings', { numberOfKeys: 2, lua: RESEED_LUA })
  }

  /** Who made the settings in force here, and when (put back with them if Redis loses them). */
  private current: { version: number, actor: string, at: string } | undefined
  /** A version that did not validate here: not logged again at every check. */
  private rejected = 0
  private fleet: FleetStatus = { storedVersion: undefined, inSync: true, checkedAt: null }

  get status (): FleetStatus {
    return this.fleet
  }

  /** Subscribes, loads the fleet's settings, and starts checking the version. */
  async start (): Promise<void> {
    // The version check runs whatever happens below: a missed announcement, or a
    // subscription not made yet, is caught up with by the next check.
    this.timer = setInterval(() => { this.load().catch(() => {}) }, this.opts.pollMs ?? SYNC_POLL_MS)
    this.timer.unref()
    this.subscriber.on('message', (_channel: string, text: string) => this.onMessage(text))
    // Built lazy and without an offline queue, like the store's: connect first. After a
    // reconnect ioredis subscribes again by itself. Reconnected (Redis restarted, perhaps
    // empty): check at once rather than at the next poll.
    this.subscriber.on('ready', () => { this.load().catch(() => {}) })
    const deadline = this.opts.connectTimeoutMs
    let timer: NodeJS.Timeout | undefined
    try {
      // Bounded: start-up must not wait on a cluster still settling (the store itself is
      // connected by then); the subscription then completes in the background.
      await Promise.race([
        this.subscriber.connect().then(() => this.subscriber.subscribe(this.channel)),
        new Promise((_resolve, reject) => { timer = setTimeout(reject, deadline, new Error(`no subscription within ${deadline} ms`)) })
      ])
    } finally {
      clearTimeout(timer)
    }
    await this.load()
  }

  private onMessage (text: string): void {
    let message: Message
    try {
      message = JSON.parse(text) as Message
    } catch {
      return
    }
    if (message.type === 'forget') this.opts.store.forget()
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
        const text = await this.opts.store.client.get(this.settingsKey)
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
    const reseed = (this.opts.store.client as unknown as { rlReseedSettings: (...a: string[]) => Promise<number> }).rlReseedSettings
    await reseed.call(this.opts.store.client, this.versionKey, this.settingsKey, doc, this.channel, String(manager.version))
    this.fleet.storedVersion = manager.version
    this.fleet.inSync = true
  }

  /** Stores and announces new settings; resolves to their version. */
  async publish (settings: RuntimeSettings, actor: string): Promise<number> {
    const at = new Date().toISOString()
    const body = JSON.stringify({ settings, actor, at }).slice(1, -1)
    const publish = (this.opts.store.client as unknown as { rlPublishSettings: (...a: string[]) => Promise<number> }).rlPublishSettings
    const version = await publish.call(this.opts.store.client, this.versionKey, this.settingsKey, body, this.channel, String(this.opts.manager.version))
    this.current = { version, actor, at }
    this.fleet = { storedVersion: version, inSync: true, checkedAt: new Date().toISOString() }
    return version
  }

  /** Tells every instance to drop its local denials and bans (after a reset or unban). */
  async forget (): Promise<void> {
    await this.opts.store.client.publish(this.channel, '{"type":"forget"}')
  }

  async close (): Promise<void> {
    clearInterval(this.timer)
    this.subscriber.disconnect()
  }
}
