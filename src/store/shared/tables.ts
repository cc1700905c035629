/**
 * The memory store's tables, either in this thread (the slab, a Map of counts) or in
 * shared memory (zones every worker thread decides against): limiter states, bans,
 * refusals counted towards a ban, requests in flight per in-flight limit, and the usage
 * ledger's lines.
 */
import { SharedZone } from './zone.js'
import type { SettingsShare } from './settings-channel.js'

/** Requests in flight per key: what the memory store needs of the table of counts. */
export interface CountTable {
  get (key: string): number | undefined
  set (key: string, count: number): void
  delete (key: string): boolean | void
  lock (keys: readonly string[]): void
  unlock (): void
}

/** One thread's counts. */
export class LocalCounts extends Map<string, number> implements CountTable {
  lock (_keys: readonly string[]): void {}
  unlock (): void {}
}

/** Counts in a shared zone: records of one number that never expire (released, they go). */
export class ZoneCounts implements CountTable {
  constructor (readonly zone: SharedZone) {}
  get (key: string): number | undefined {
    return this.zone.get(key) as number | undefined
  }

  set (key: string, count: number): void {
    this.zone.set(key, count, Infinity)
  }

  delete (key: string): void {
    this.zone.delete(key)
  }

  lock (keys: readonly string[]): void {
    this.zone.lock(keys)
  }

  unlock (): void {
    this.zone.unlock()
  }
}

/** The buffers of a memory store's zones: what a worker thread is given to share them. */
export interface ZoneBuffers {
  readonly states: SharedArrayBuffer
  readonly banned: SharedArrayBuffer
  readonly refusals: SharedArrayBuffer
  readonly inFlight: SharedArrayBuffer
  readonly usage: SharedArrayBuffer
}

/** A memory store's tables in shared memory, seen from this thread. */
export interface SharedTables {
  readonly states: SharedZone
  readonly banned: SharedZone
  readonly refusals: SharedZone
  readonly inFlight: SharedZone
  /** The usage ledger's lines (ledger.ts). */
  readonly usage: SharedZone
}

/**
 * New zones for a store of `maxKeys` clients (MEMORY_STORE_MAX_KEYS each, as the slabs;
 * pages never written are never resident), or the zones of `buffers`, made elsewhere.
 */
export function sharedTables (maxKeys: number, buffers?: ZoneBuffers): SharedTables {
  return {
    states: new SharedZone(maxKeys, buffers?.states),
    banned: new SharedZone(maxKeys, buffers?.banned),
    refusals: new SharedZone(maxKeys, buffers?.refusals),
    inFlight: new SharedZone(maxKeys, buffers?.inFlight),
    usage: new SharedZone(maxKeys, buffers?.usage)
  }
}

export function buffersOf (tables: SharedTables): ZoneBuffers {
  return { states: tables.states.buffer, banned: tables.banned.buffer, refusals: tables.refusals.buffer, inFlight: tables.inFlight.buffer, usage: tables.usage.buffer }
}

/** What every thread of a process with WORKERS > 1 shares: the memory tables and the settings. */
export interface ThreadShare {
  readonly tables: SharedTables
  readonly settings: SettingsShare
}
