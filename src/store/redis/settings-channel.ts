/**
 * The fleet's runtime settings in Redis (with STORE=redis): a versioned document and a
 * channel announcing changes, all under one hash slot (`{control}`). The scripts are in
 * redis-scripts.ts; control/sync.ts decides what to store and when.
 */
import { Cluster, type Redis } from 'ioredis'
import type { RedisStore } from './store.js'
import { controlChannel, forgetsKey } from './keys.js'
import { adminWrite } from './admin-write.js'
import { ignoreReply } from './client.js'
import { PUBLISH_SETTINGS_LUA, RESEED_SETTINGS_LUA } from './admin-scripts.js'

/** What the settings sync reads at each check. */
export interface StoredControl {
  /** The stored settings document, or null. */
  settings: string | null
  /** How many resets and unbans were made (keys.ts forgetsKey); 0 where none are counted. */
  forgets: number
}

/** What the settings sync needs of Redis. */
export interface SettingsChannel {
  read (): Promise<StoredControl>
  /** Stores `{"version":V,<body>}` under a version above `floor`, announces it; resolves to V. */
  publish (body: string, floor: number): Promise<number>
  /** Stores `doc` as version `version` if Redis holds an older one or none, and announces it. */
  reseed (doc: string, version: number): Promise<void>
  /** Drops this instance's local denials and bans (another instance announced a reset). */
  forgetLocally (): void
  /**
   * Listens to the channel, waiting at most `timeoutMs` for the subscription (it completes
   * in the background after that); `onReady` is called on every (re)connection.
   */
  subscribe (onMessage: (text: string) => void, onReady: () => void, timeoutMs: number): Promise<void>
  close (): void
}

type Scripted = { rlReseedSettings: (...a: string[]) => Promise<number> }

export class RedisSettingsChannel implements SettingsChannel {
  private readonly subscriber: Redis | Cluster
  private readonly versionKey: string
  private readonly settingsKey: string
  private readonly forgetsKey: string
  private readonly channel: string

  constructor (private readonly store: RedisStore, prefix: string) {
    this.versionKey = `${prefix}{control}:version`
    this.settingsKey = `${prefix}{control}:settings`
    this.forgetsKey = forgetsKey(prefix)
    this.channel = controlChannel(prefix)
    // A connection of its own: a subscribed connection can issue nothing else. It subscribes
    // at every connection itself (subscribe below): ioredis's own resubscription would
    // leave a refused one (NOPERM after an ACL change) as an unhandled rejection.
    const client = store.client
    this.subscriber = client instanceof Cluster ? client.duplicate() : client.duplicate({ autoResubscribe: false })
    this.subscriber.on('error', () => {})
    client.defineCommand('rlReseedSettings', { numberOfKeys: 2, lua: RESEED_SETTINGS_LUA })
  }

  async read (): Promise<StoredControl> {
    // One slot ({control}): one command, on a Cluster too.
    const [settings, forgets] = await this.store.client.mget(this.settingsKey, this.forgetsKey)
    return { settings: settings ?? null, forgets: Number(forgets ?? 0) }
  }

  /** An admin write: applied and answered, or refused and never applied (admin-write.ts). */
  async publish (body: string, floor: number): Promise<number> {
    return await adminWrite(this.store.client, 'the settings change', PUBLISH_SETTINGS_LUA, [this.versionKey, this.settingsKey], [body, this.channel, String(floor)], this.store.timeoutMs) as number
  }

  async reseed (doc: string, version: number): Promise<void> {
    await (this.store.client as unknown as Scripted).rlReseedSettings(this.versionKey, this.settingsKey, doc, this.channel, String(version))
  }

  forgetLocally (): void {
    this.store.forget()
  }

  async subscribe (onMessage: (text: string) => void, onReady: () => void, timeoutMs: number): Promise<void> {
    this.subscriber.on('message', (_channel: string, text: string) => onMessage(text))
    // Subscribed at every (re)connection: ioredis subscribes again by itself only to what it
    // had subscribed before, so a first connection that failed (a loaded machine, Redis
    // restarting) would leave this instance deaf to every announcement. Subscribing twice
    // to one channel changes nothing.
    let subscribed: (() => void) | undefined
    let refused: ((err: Error) => void) | undefined
    // The first subscription's outcome, either way (later ones settle nothing).
    const first = new Promise<void>((resolve, reject) => { subscribed = resolve; refused = reject })
    this.subscriber.on('ready', () => {
      this.subscriber.subscribe(this.channel).then(subscribed, refused)
      onReady()
    })
    // Built lazy and without an offline queue, like the store's; a failed first connection
    // is retried by ioredis's own strategy.
    this.subscriber.connect().catch(ignoreReply)
    let timer: NodeJS.Timeout | undefined
    try {
      // Bounded: start-up must not wait on a cluster still settling (the store itself is
      // connected by then); the subscription then completes in the background.
      await Promise.race([
        first,
        new Promise((_resolve, reject) => { timer = setTimeout(reject, timeoutMs, new Error(`no subscription within ${timeoutMs} ms`)) })
      ])
    } finally {
      clearTimeout(timer)
    }
  }

  close (): void {
    this.subscriber.disconnect()
  }
}
