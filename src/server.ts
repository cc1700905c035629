/**
 * The process entry point, and the only module that touches `process`: environment →
 * Config → App → listen → signals. A bad configuration exits with status 1 before any
 * port is bound, naming the variable.
 */
import { existsSync } from 'node:fs'
import { pathToFileURL } from 'node:url'
import { ConfigError, describeError } from './errors.js'
import { warnIfUnreachable } from './proxy/probe.js'
import pino from 'pino'
import { buildApp, type App } from './app.js'
import { loadConfig, type Config } from './config/index.js'
import { loggerOptions } from './log.js'
import { listenOn } from './proxy/listener.js'
import { resolveWorkers } from './workers/runtime.js'

export interface Running {
  app: App
  /** Drain and close everything; resolves when done (also on a forced close). */
  shutdown (signal: string): Promise<void>
}

/**
 * SIGHUP reads RATE_LIMIT_RULES_FILE again now (as on a change of the file); SIGTERM and
 * SIGINT drain, then end the process (0, or through `failed`).
 */
function handleSignals (shutdown: (signal: string) => Promise<void>, reloadRules: () => unknown, failed: (err: unknown) => void): void {
  process.on('SIGHUP', () => { reloadRules() })
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => { shutdown(signal).then(() => process.exit(0), failed) })
  }
}

export async function main (env: Record<string, string | undefined> = process.env): Promise<Running | undefined> {
  let config: Config
  let workers: number
  try {
    config = loadConfig(env)
    workers = resolveWorkers(config.workers, process.version, process.platform)
  } catch (err) {
    process.stderr.write(`configuration error: ${describeError(err)}\n`)
    process.exitCode = 1
    return undefined
  }

  const logger = pino(loggerOptions(config.logLevel, config.apiKeyHeader))
  /* c8 ignore start -- closing fastify and the store has no failure a test can provoke */
  function shutdownFailed (err: unknown): void {
    logger.error({ err }, 'shutdown failed')
    process.exit(1)
  }
  /* c8 ignore stop */
  /* c8 ignore start -- needs Node >= 22.12 (reusePort): the Node 24 lane runs it (test/process/workers.test.ts) */
  if (workers > 1) {
    let running
    try {
      running = await (await import('./workers/supervisor.js')).supervise(config, env, workers, logger)
    } catch (err) {
      process.stderr.write(`start-up error: ${describeError(err)}\n`)
      process.exitCode = 1
      return undefined
    }
    handleSignals(running.shutdown, running.reloadRules, shutdownFailed)
    return running
  }
  /* c8 ignore stop */
  let app: App
  try {
    app = await buildApp(config, { logger })
  } catch (err) {
    // The store could not be reached at start-up (the message says which and why).
    process.stderr.write(`start-up error: ${describeError(err)}\n`)
    process.exitCode = 1
    return undefined
  }
  try {
    if (config.mode === 'proxy') await listenOn(app.gateway, config.port, config.host, 'HOST/PORT')
    if (app.decision !== undefined) await listenOn(app.decision, config.decision!.port, config.decision!.host, 'DECISION_HOST/DECISION_PORT')
    if (app.rls !== undefined) await app.rls.listen()
    await listenOn(app.admin, config.adminPort, config.adminHost, 'ADMIN_HOST/ADMIN_PORT')
  } catch (err) {
    logger.fatal({ err }, 'could not listen')
    process.stderr.write(`start-up error: ${describeError(err)}\n`)
    await app.close().catch(() => {})
    process.exitCode = 1
    return undefined
  }
  logger.info({
    mode: config.mode,
    upstream: config.upstreamUrl,
    decisionPort: config.decision?.port,
    rlsPort: config.rls?.port,
    rateLimiting: config.rateLimitEnabled,
    store: config.store,
    storeFailureMode: config.storeFailureMode,
    algorithm: config.algorithm,
    rate: config.limit.rate.text,
    burst: config.limit.burst,
    rules: config.rules.length
  }, 'gateway ready')
  // Not a reason to stop: in a compose stack the upstream may come up after the gateway.
  if (app.upstream !== undefined) void warnIfUnreachable(app.upstream, logger, config.upstreamUrl!)

  let closing: Promise<void> | undefined
  function shutdown (signal: string): Promise<void> {
    closing ??= (async () => {
      logger.info({ signal }, 'shutting down: draining in-flight requests')
      // Past the drain bound, cut the remaining connections so the process still exits.
      const force = setTimeout(() => {
        logger.warn('drain timeout reached; closing remaining connections')
        for (const listener of app.listeners) listener.server.closeAllConnections()
      }, config.shutdownTimeoutMs)
      force.unref()
      try {
        await app.close()
      } finally {
        clearTimeout(force)
      }
      logger.info('shut down')
    })()
    return closing
  }
  handleSignals(shutdown, () => app.reloadRules(), shutdownFailed)
  return { app, shutdown }
}

/**
 * `.env` in the working directory, if there is one (as `cp .env.example .env` makes):
 * loaded into the environment, where variables already set win. A file that cannot be
 * read or parsed stops the start like any other configuration error.
 */
export function loadDotEnv (file = DOT_ENV): boolean {
  if (!existsSync(file)) return false
  try {
    process.loadEnvFile(file)
  } catch (err) {
    throw new ConfigError(`${file}: ${(err as Error).message}`)
  }
  return true
}
const DOT_ENV = '.env'

/* c8 ignore start -- the entry-point guard runs only when started as a program (tested by spawning it) */
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  let loaded = true
  try {
    loadDotEnv()
  } catch (err) {
    process.stderr.write(`configuration error: ${describeError(err)}\n`)
    process.exitCode = 1
    loaded = false
  }
  if (loaded) await main()
}
/* c8 ignore stop */
