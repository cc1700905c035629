/**
 * The runtime settings of one process's worker threads (WORKERS > 1, memory store): what
 * Redis's settings channel is to a fleet (redis/settings-channel.ts), in shared memory.
 * The versioned document lives in a SharedArrayBuffer under a lock; changes are announced
 * on a BroadcastChannel every thread listens to; control/sync.ts does the rest, as for Redis.
 */
import { BroadcastChannel } from 'node:worker_threads'
import type { SettingsChannel, StoredControl } from '../redis/settings-channel.js'

/** Largest settings document (the admin API's bodies are at most 1 MiB). */
export const SETTINGS_DOC_BYTES = 2 * 1024 * 1024
/** Header words: lock, stored version, document length in bytes. */
const LOCK = 0
const VERSION = 1
const LENGTH = 2
const HEADER_BYTES = 16

/** What a thread is given to share the settings: the document's buffer and the channel's name. */
export interface SettingsShare {
  readonly buffer: SharedArrayBuffer
  readonly name: string
}

/** A new share, for the main thread to hand to every worker. */
export function newSettingsShare (): SettingsShare {
  return { buffer: new SharedArrayBuffer(HEADER_BYTES + SETTINGS_DOC_BYTES), name: `gateway-settings-${process.pid}-${Math.random().toString(36).slice(2)}` }
}

export class ThreadSettingsChannel implements SettingsChannel {
  private readonly header: Int32Array
  private readonly bytes: Uint8Array
  private readonly channel: BroadcastChannel

  constructor (share: SettingsShare) {
    this.header = new Int32Array(share.buffer, 0, HEADER_BYTES / 4)
    this.bytes = new Uint8Array(share.buffer, HEADER_BYTES)
    this.channel = new BroadcastChannel(share.name)
    // A worker's channel must not keep its thread alive by itself.
    this.channel.unref()
  }

  async read (): Promise<StoredControl> {
    // Resets need no counting here: the memory zones are every thread's (forgetLocally).
    return { settings: this.locked(() => this.header[LENGTH] === 0 ? null : Buffer.from(this.bytes.subarray(0, this.header[LENGTH])).toString('utf8')), forgets: 0 }
  }

  async publish (body: string, floor: number): Promise<number> {
    const version = this.locked(() => {
      const v = Math.max(this.header[VERSION]!, floor) + 1
      this.store(`{"version":${v},${body}}`, v)
      return v
    })
    this.channel.postMessage(JSON.stringify({ type: 'settings', version }))
    return version
  }

  async reseed (doc: string, version: number): Promise<void> {
    const stored = this.locked(() => {
      if (this.header[VERSION]! >= version && this.header[LENGTH] !== 0) return false
      this.store(doc, version)
      return true
    })
    if (stored) this.channel.postMessage(JSON.stringify({ type: 'settings', version }))
  }

  /** The memory zones are every thread's at once: a reset is seen by all without a word. */
  forgetLocally (): void {}

  async subscribe (onMessage: (text: string) => void, onReady: () => void): Promise<void> {
    this.channel.onmessage = (event: unknown) => { onMessage(String((event as { data: unknown }).data)) }
    onReady()
  }

  close (): void {
    this.channel.close()
  }

  private store (doc: string, version: number): void {
    const length = Buffer.byteLength(doc)
    // Refused before a byte is written: the stored document stays whole.
    if (length > SETTINGS_DOC_BYTES) throw new Error(`the settings document is over ${SETTINGS_DOC_BYTES} bytes`)
    new TextEncoder().encodeInto(doc, this.bytes)
    this.header[LENGTH] = length
    this.header[VERSION] = version
  }

  /** Runs `f` holding the document's lock (held for microseconds: spun on). */
  private locked<T> (f: () => T): T {
    while (Atomics.compareExchange(this.header, LOCK, 0, 1) !== 0) Atomics.wait(this.header, LOCK, 1, 1)
    try {
      return f()
    } finally {
      Atomics.store(this.header, LOCK, 0)
      Atomics.notify(this.header, LOCK, 1)
    }
  }
}
