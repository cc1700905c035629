/**
 * WORKERS > 1: the main thread starts the worker threads (worker.ts), each running the
 * client path on PORT with reusePort against the memory tables they all share, and
 * supervises them: a worker that dies is replaced (the locks it held freed, its in-flight
 * requests lost, nothing else), SIGTERM drains them all, SIGHUP and rule reloads reach
 * them all. The admin listener is the main thread's alone and answers for the process:
 * bans, resets and inspection act on the shared tables; settings reach every worker through
 * the threads' settings channel; metrics are the workers' summed (prom-client's
 * AggregatorRegistry), offenders merged, readiness is every worker's.
 */
import { Worker } from 'node:worker_threads'
import { AggregatorRegistry } from 'prom-client'
import type { MetricsJson } from '../observe/metrics.js'
import type { FastifyBaseLogger } from 'fastify'
import { buildApp, type App } from '../app.js'
import type { Config } from '../config/index.js'
import { describeError } from '../errors.js'
import { listenOn } from '../proxy/listener.js'
import { mergeOffenders, type Offender } from '../observe/offenders.js'
import type { WorkersReport, WorkersView } from '../admin/options.js'
import { newSettingsShare, type SettingsShare } from '../store/shared/settings-channel.js'
import { buffersOf, sharedTables, type SharedTables } from '../store/shared/tables.js'
import type { ToMain, ToWorker, WorkerData } from './messages.js'
import { heaviestOf, type UsageTotal } from '../store/usage.js'

const WORKER = new URL('./worker.js', import.meta.url)
/** Replacing a worker that died waits this long, longer each time it dies within QUICK_MS of its start. */
const RESPAWN_MS = [0, 100, 500, 1000, 5000]
const QUICK_MS = 1000
/** How long a report may take before the metrics are answered without that worker. */
const REPORT_TIMEOUT_MS = 2000

interface Slot {
  index: number
  worker: Worker
  threadId: number
  ready: boolean
  /** The port its client listener got (PORT, or its own with PORT=0). */
  port: number
  startedAt: number
  failures: number
}

export class WorkerPool implements WorkersView {
  private readonly slots = new Map<number, Slot>()
  /** Questions asked of workers (report, usage), by id, waiting for their answer. */
  private readonly pending = new Map<number, (reply: ToMain | undefined) => void>()
  private nextQuestion = 1
  private draining = false
  /** Workers there should be. */
  private count = 0
  /** Every worker was ready once: from then on one that dies is replaced. */
  private started = false

  constructor (
    private readonly env: Record<string, string | undefined>,
    private readonly tables: SharedTables,
    private readonly settings: SettingsShare,
    private readonly log: FastifyBaseLogger,
    private readonly ownMetrics: () => Promise<MetricsJson>
  ) {}

  /** Starts `count` workers; resolves when every one listens, or rejects with the first failure. */
  async start (count: number): Promise<void> {
    this.count = count
    await Promise.all(Array.from({ length: count }, (_, i) => this.spawn(i + 1, 0)))
    this.started = true
  }

  /** Whether every worker is up and listening. */
  ready (): boolean {
    // One being replaced counts as not ready.
    if (this.draining || this.slots.size < this.count) return false
    for (const slot of this.slots.values()) if (!slot.ready) return false
    return true
  }

  get size (): number {
    return this.slots.size
  }

  /** Each worker's thread, by its number (tests: which one to stop). */
  threads (): Map<number, Worker> {
    return new Map([...this.slots].map(([i, s]) => [i, s.worker]))
  }

  /** Each worker's client port, by its number: PORT for all, or (PORT=0) one each. */
  ports (): Map<number, number> {
    return new Map([...this.slots].map(([i, s]) => [i, s.port]))
  }

  /** Every worker reads its rules file again. */
  reloadRules (): void {
    this.broadcast({ type: 'reload' })
  }

  /** Every worker's metrics summed with the main thread's, offenders merged, requests in flight added up. */
  async report (minutes: number, limit: number): Promise<WorkersReport> {
    const reports = (await this.askAll(id => ({ type: 'report', id, minutes }))) as Array<Extract<ToMain, { type: 'report' }>>
    const metrics: MetricsJson[] = [await this.ownMetrics(), ...reports.map(r => r.metrics)]
    return {
      registry: AggregatorRegistry.aggregate(metrics),
      offenders: mergeOffenders(reports.map(r => r.offenders), limit),
      inFlight: reports.reduce((sum, r) => sum + r.inFlight, 0),
      workers: reports.map(r => r.share).sort((a, b) => a.worker - b.worker)
    }
  }

  /**
   * The usage ledger's heaviest clients: each worker lists those it knows by name with the
   * shared counts; the lists merged (a client's counts are the same in every list).
   */
  async topUsage (days: readonly string[], limit: number): Promise<UsageTotal[]> {
    const answers = (await this.askAll(id => ({ type: 'usage', id, days: [...days], limit }))) as Array<Extract<ToMain, { type: 'usage' }>>
    const byClient = new Map<string, UsageTotal>()
    for (const a of answers) for (const u of a.top) byClient.set(u.client, u)
    return heaviestOf([...byClient.values()], limit)
  }

  /** Drains every worker (each closes its listeners once its requests are done); resolves when all have ended. */
  async drain (timeoutMs: number): Promise<void> {
    this.draining = true
    const ended = [...this.slots.values()].map(s => new Promise<void>(resolve => {
      s.worker.once('exit', () => resolve())
    }))
    this.broadcast({ type: 'drain' })
    // Past the bound, workers still draining are stopped (their remaining requests cut).
    const force = setTimeout(() => { for (const s of this.slots.values()) void s.worker.terminate() }, timeoutMs + 1000)
    force.unref()
    await Promise.all(ended)
    clearTimeout(force)
  }

  private broadcast (message: ToWorker): void {
    for (const slot of this.slots.values()) slot.worker.postMessage(message)
  }

  /** Asks every ready worker; resolves with the answers that came within REPORT_TIMEOUT_MS. */
  private async askAll (question: (id: number) => ToWorker): Promise<ToMain[]> {
    const asked = [...this.slots.values()].filter(s => s.ready).map(slot => new Promise<ToMain | undefined>(resolve => {
      const id = this.nextQuestion++
      // A worker whose event loop is stuck (or that died with the question) is left out.
      /* c8 ignore start -- whether a dying worker answers first is a race; no test can stall a live one */
      const timer = setTimeout(() => {
        this.pending.delete(id)
        resolve(undefined)
      }, REPORT_TIMEOUT_MS)
      /* c8 ignore stop */
      this.pending.set(id, reply => {
        clearTimeout(timer)
        resolve(reply)
      })
      slot.worker.postMessage(question(id))
    }))
    return (await Promise.all(asked)).filter(r => r !== undefined)
  }

  private spawn (index: number, failures: number): Promise<void> {
    const data: WorkerData = { env: this.env, index, buffers: buffersOf(this.tables), settings: this.settings }
    const worker = new Worker(WORKER, { workerData: data })
    const slot: Slot = { index, worker, threadId: worker.threadId, ready: false, port: 0, startedAt: Date.now(), failures }
    this.slots.set(index, slot)
    return new Promise((resolve, reject) => {
      worker.on('message', (message: ToMain) => {
        switch (message.type) {
          case 'ready':
            slot.ready = true
            slot.port = message.port
            resolve()
            return
          case 'failed':
            reject(new Error(message.message))
            return
          case 'report':
          case 'usage':
            this.pending.get(message.id)?.(message)
            this.pending.delete(message.id)
        }
      })
      /* c8 ignore next -- an exception no code of the worker's catches: only a bug throws one */
      worker.on('error', err => { this.log.error({ err, worker: index }, 'worker failed') })
      worker.on('exit', code => {
        // The locks it held (a decision cut short) are freed, so the others go on.
        for (const zone of [this.tables.states, this.tables.banned, this.tables.refusals, this.tables.inFlight, this.tables.usage]) zone.releaseHeldBy(slot.threadId)
        if (this.slots.get(index) === slot) this.slots.delete(index)
        if (!slot.ready) reject(new Error(`worker ${index} exited (code ${code}) before it was ready`))
        // At the start a worker that dies is the start's failure; draining, the end.
        if (this.draining || !this.started) return
        // Dying before it was ready, or soon after its start, it waits longer each time.
        const quick = !slot.ready || Date.now() - slot.startedAt < QUICK_MS
        const next = quick ? failures + 1 : 0
        const wait = RESPAWN_MS[Math.min(next, RESPAWN_MS.length - 1)]!
        this.log.error({ worker: index, code, respawnInMs: wait }, 'worker exited: replacing it (its requests in flight are lost)')
        setTimeout(() => {
          /* c8 ignore next -- a drain that began within the wait */
          if (this.draining) return
          this.spawn(index, next).then(
            () => { this.log.info({ worker: index }, 'worker replaced') },
            (err: unknown) => { this.log.warn({ worker: index, err: describeError(err) }, 'a replacement worker ended before it was ready; trying again') }
          )
        }, wait).unref()
      })
    })
  }
}

/** A process with WORKERS > 1, started: its admin app, its workers, and what its signals do. */
export interface Supervised {
  app: App
  pool: WorkerPool
  /** SIGTERM, SIGINT: every worker drained, then the admin listener closed. */
  shutdown (signal: string): Promise<void>
  /** SIGHUP: the rules file read again here and in every worker. */
  reloadRules (): void
}

/** The process's main thread with WORKERS > 1 (see the module's comment); server.ts wires its signals. */
export async function supervise (config: Config, env: Record<string, string | undefined>, count: number, logger: FastifyBaseLogger): Promise<Supervised> {
  const tables = sharedTables(config.memoryStoreMaxKeys)
  const settings = newSettingsShare()
  let app: App | undefined
  const pool = new WorkerPool(env, tables, settings, logger, async () => await app!.metrics.registry.getMetricsAsJSON())
  try {
    app = await buildApp(config, { logger, threads: { tables, settings, workers: pool } })
    await pool.start(count)
    await listenOn(app.admin, config.adminPort, config.adminHost, 'ADMIN_HOST/ADMIN_PORT')
  } catch (err) {
    // The workers that did start stop; the first failure is the start's error.
    await pool.drain(0)
    await app?.close()
    throw err
  }
  const main = app
  logger.info({ workers: count, mode: config.mode, store: config.store, port: config.port }, 'gateway ready: every worker listening')

  let closing: Promise<void> | undefined
  return {
    app: main,
    pool,
    shutdown (signal: string): Promise<void> {
      closing ??= (async () => {
        logger.info({ signal, workers: pool.size }, 'shutting down: draining every worker')
        main.state.draining = true
        await pool.drain(config.shutdownTimeoutMs)
        await main.close()
        logger.info('shut down')
      })()
      return closing
    },
    reloadRules (): void {
      main.reloadRules()
      pool.reloadRules()
    }
  }
}
