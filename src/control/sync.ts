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

/** Stores the settings under a new version and announces it (one slot: `{control}`). */
const PUBLISH_LUA = `
local v = redis.call('INCR', KEYS[1])
redis.call('SET', KEYS[2], '{"version":' .. v .. ',' .. ARGV[1] .. '}')
redis.call('PUBLISH', ARGV[2], '{"type":"settings","version":' .. v .. '}')
return v
`

interface StoredSettings { version: number, settings: RuntimeSettings, actor: string, at: string }
type Message = { type: 'settings', version: number } | { type: 'forget' }

export interface SyncOptions {
  store: RedisStore
  manager: LimitsManager
  prefix: string
  log: FastifyBaseLogger
  pollMs?: number
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
  }

  /** Subscribes, loads the fleet's settings, and starts checking the version. */
  async start (): Promise<void> {
    this.subscriber.on('message', (_channel: string, text: string) => this.onMessage(text))
    // Built lazy and without an offline queue, like the store's: connect first. After a
    // reconnect ioredis subscribes again by itself.
    await this.subscriber.connect()
    await this.subscriber.subscribe(this.channel)
    await this.load()
    this.timer = setInterval(() => { this.load().catch(() => {}) }, this.opts.pollMs ?? SYNC_POLL_MS)
    this.timer.unref()
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

  /** Applies the stored settings if they are newer than those in force. */
  load (): Promise<void> {
    this.loading ??= (async () => {
      try {
        const text = await this.opts.store.client.get(this.settingsKey)
        if (text === null) return
        const stored = JSON.parse(text) as StoredSettings
        if (stored.version <= this.opts.manager.version) return
        try {
          this.opts.manager.apply(stored.settings, stored.version)
          this.opts.log.info({ version: stored.version, actor: stored.actor, at: stored.at }, 'runtime settings applied from the fleet')
        } catch (err) {
          this.opts.log.error({ version: stored.version, reason: (err as Error).message }, 'runtime settings from the fleet do not validate here; the settings in force stay')
        }
      } finally {
        this.loading = undefined
      }
    })()
    return this.loading
  }

  /** Stores and announces new settings; resolves to their version. */
  async publish (settings: RuntimeSettings, actor: string): Promise<number> {
    const body = JSON.stringify({ settings, actor, at: new Date().toISOString() }).slice(1, -1)
    const publish = (this.opts.store.client as unknown as { rlPublishSettings: (...a: string[]) => Promise<number> }).rlPublishSettings
    return await publish.call(this.opts.store.client, this.versionKey, this.settingsKey, body, this.channel)
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
