/**
 * The fleet's runtime settings in Redis (with STORE=redis): a versioned document and a
 * channel announcing changes, all under one hash slot (`{control}`). The scripts are in
 * redis-scripts.ts; control/sync.ts decides what to store and when.
 */
import { Cluster, type Redis } from 'ioredis'
import type { RedisStore } from './store.js'
import { controlChannel } from './keys.js'
import { adminWrite } from './admin-write.js'
import { PUBLISH_SETTINGS_LUA, RESEED_SETTINGS_LUA } from './admin-scripts.js'

/** What the settings sync needs of Redis. */
export interface SettingsChannel {
  /** The stored settings document, or null. */
  read (): Promise<string | null>
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
  private readonly channel: string

  constructor (private readonly store: RedisStore, prefix: string) {
    this.versionKey = `${prefix}{control}:version`
    this.settingsKey = `${prefix}{control}:settings`
    this.channel = controlChannel(prefix)
    // A connection of its own: a subscribed connection can issue nothing else.
    const client = store.client
    this.subscriber = client instanceof Cluster ? client.duplicate() : client.duplicate()
    this.subscriber.on('error', () => {})
    client.defineCommand('rlReseedSettings', { numberOfKeys: 2, lua: RESEED_SETTINGS_LUA })
  }

  read (): Promise<string | null> {
    return this.store.client.get(this.settingsKey)
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
    // Built lazy and without an offline queue, like the store's: connect first. After a
    // reconnect ioredis subscribes again by itself.
    this.subscriber.on('ready', onReady)
    let timer: NodeJS.Timeout | undefined
    try {
      // Bounded: start-up must not wait on a cluster still settling (the store itself is
      // connected by then); the subscription then completes in the background.
      await Promise.race([
        this.subscriber.connect().then(() => this.subscriber.subscribe(this.channel)),
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
