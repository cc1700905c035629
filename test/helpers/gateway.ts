/**
 * Builds the real gateway from an environment and listens on 127.0.0.1:0 (client and
 * admin), closed when the test ends. Time can be injected with a ManualClock.
 */
import type { Teardown } from './tap.js'
import type { AddressInfo } from 'node:net'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import type { FastifyBaseLogger } from 'fastify'
import { buildApp, type App } from '../../src/app.js'
import type { Clock } from '../../src/core/clock.js'
import { loadConfig } from '../../src/config/index.js'
import type { Store } from '../../src/store/types.js'

export interface TestGateway {
  app: App
  /** The client listener (not listening with MODE=decision). */
  url: string
  adminUrl: string
  port: number
  /** The decision listener's URL, when DECISION_PORT is set. */
  decisionUrl: string
  /** The rate limit service's host:port, when RLS_PORT is set (it listens on a free port). */
  rlsAddress: string
}

export interface GatewayOptions {
  clock?: Clock
  store?: Store
  /** STORE=redis: the clock the scripts decide by instead of Redis TIME (see redis.ts's clearOfWindowEdges). */
  redisClock?: Clock
  /** Listen address of the client listener (default 127.0.0.1). */
  host?: string
  /** Where logs go (default: nowhere). */
  logger?: FastifyBaseLogger
}

export async function startGateway (t: Teardown, env: Record<string, string>, opts: GatewayOptions = {}): Promise<TestGateway> {
  const config = loadConfig({
    PORT: '0',
    HOST: opts.host ?? '127.0.0.1',
    ADMIN_PORT: '0',
    ADMIN_HOST: '127.0.0.1',
    LOG_LEVEL: 'silent',
    ...env
  })
  const app = await buildApp(config, {
    logger: opts.logger ?? pino({ level: 'silent' }),
    ...(opts.clock ? { clock: opts.clock } : {}),
    ...(opts.store ? { store: opts.store } : {}),
    ...(opts.redisClock ? { redisClock: opts.redisClock } : {})
  })
  t.teardown(() => app.close())
  if (config.mode === 'proxy') await app.gateway.listen({ port: 0, host: config.host })
  if (app.decision !== undefined) await app.decision.listen({ port: 0, host: config.decision!.host })
  await app.admin.listen({ port: 0, host: config.adminHost })
  const rlsAddress = app.rls === undefined ? '' : `127.0.0.1:${await app.rls.listen()}`
  const port = config.mode === 'proxy' ? (app.gateway.server.address() as AddressInfo).port : 0
  const adminPort = (app.admin.server.address() as AddressInfo).port
  const host = config.host.includes(':') ? `[${config.host}]` : config.host
  const decisionUrl = app.decision === undefined ? '' : `http://127.0.0.1:${(app.decision.server.address() as AddressInfo).port}`
  return { app, port, url: `http://${host}:${port}`, adminUrl: `http://127.0.0.1:${adminPort}`, decisionUrl, rlsAddress }
}

/** A rules file (RATE_LIMIT_RULES_FILE) holding these rules, removed when the test ends. */
export function rulesFile (t: Teardown, rules: unknown[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'gw-rules-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'rules.json')
  writeFileSync(file, JSON.stringify({ rules }))
  return file
}
