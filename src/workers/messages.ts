/** What the main thread and its worker threads say to each other (WORKERS > 1). */
import type { MetricsJson } from '../observe/metrics.js'
import type { Offender } from '../observe/offenders.js'
import type { SettingsShare } from '../store/shared/settings-channel.js'
import type { ZoneBuffers } from '../store/shared/tables.js'
import type { WorkerShare } from '../admin/options.js'
import type { UsageTotal } from '../store/usage.js'

/** A worker's start: the environment it loads its Config from, and what it shares. */
export interface WorkerData {
  readonly env: Record<string, string | undefined>
  /** 1, 2, …: shown in its log lines (a replacement takes the number of the one it replaces). */
  readonly index: number
  readonly buffers: ZoneBuffers
  readonly settings: SettingsShare
}

export type ToWorker =
  | { type: 'reload' }
  | { type: 'drain' }
  /** Metrics, the offenders of the last `minutes` and requests in flight, answered with `id`. */
  | { type: 'report', id: number, minutes: number }
  /** The heaviest clients of the usage ledger this worker knows by name, answered with `id`. */
  | { type: 'usage', id: number, days: string[], limit: number }

export type ToMain =
  | { type: 'ready', port: number }
  | { type: 'failed', message: string }
  | { type: 'report', id: number, metrics: MetricsJson, offenders: Offender[], inFlight: number, share: WorkerShare }
  | { type: 'usage', id: number, top: UsageTotal[] }
