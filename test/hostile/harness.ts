/**
 * The hostile suite's instruments (raw sockets: helpers/http.ts rawExchange): a
 * tally of answers by class, and the figures each scenario writes to
 * test-artifacts/hostile/<scenario>.json (and asserts).
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { reusePortAvailable } from '../../src/workers/runtime.js'

/**
 * Where Node has reusePort (the Node 24 lane), the scenarios run against a gateway with
 * WORKERS=2: two worker threads on one port sharing one store; the other lane runs them
 * with one thread. (The flood, whose memory cap is one isolate's, runs with one in both.)
 */
export const WORKERS_ENV: Record<string, string> = reusePortAvailable(process.version, process.platform) ? { WORKERS: '2' } : {}

export const RESULTS_DIR = fileURLToPath(new URL('../../../test-artifacts/hostile/', import.meta.url))

export interface Figures {
  scenario: string
  /** Requests (or attempts) sent. */
  sent: number
  /** Answers by status class (2xx, 4xx, ...) or `closed` (connection closed without an answer by design). */
  answered: Record<string, number>
  /** sent - answered: requests that got nothing at all. */
  lost: number
  /** Requests the upstream saw. */
  upstream: number
  /** Requests that reached the upstream although they should not have. */
  smuggled: number
  /** The gateway process exited during the scenario. */
  crashes: number
  /** The gateway's resident memory at the end. */
  rssBytes: number
  notes?: Record<string, unknown>
}

export function writeFigures (f: Figures): Figures {
  mkdirSync(RESULTS_DIR, { recursive: true })
  writeFileSync(`${RESULTS_DIR}${f.scenario}.json`, JSON.stringify(f, null, 2) + '\n')
  return f
}

/** Counts answers by class. */
export class Tally {
  sent = 0
  readonly answered: Record<string, number> = {}
  record (status: number | 'closed'): void {
    const key = status === 'closed' ? 'closed' : `${Math.floor(status / 100)}xx`
    this.answered[key] = (this.answered[key] ?? 0) + 1
  }

  get total (): number {
    return Object.values(this.answered).reduce((a, b) => a + b, 0)
  }
}

