/**
 * RLS_PORT: Envoy's rate limit service over gRPC (@grpc/grpc-js), with the standard gRPC
 * health service (grpc-health-check), answering from the gateway's stores. RLS_CONFIG is
 * read again on SIGHUP and the rules reload, and polled every RATE_LIMIT_RULES_POLL_MS; a
 * file that does not load is logged and counted, and the limits in force stay.
 */
import { fileURLToPath } from 'node:url'
import type { FastifyBaseLogger } from 'fastify'
import { Server, ServerCredentials, status, type sendUnaryData, type ServerUnaryCall, type ServiceDefinition } from '@grpc/grpc-js'
import { loadSync } from '@grpc/proto-loader'
import { HealthImplementation } from 'grpc-health-check'
import { Counter, type Registry } from 'prom-client'
import type { Config } from '../config/index.js'
import { parseRlsDocuments, readRlsDocuments, rlsSignature } from '../config/rls.js'
import { createThrottledLog } from '../log.js'
import { isPromise, type Store } from '../store/types.js'
import { RateLimitService, RlsInvalidError, type RlsRequest, type RlsResponse } from './service.js'

export const RLS_SERVICE = 'envoy.service.ratelimit.v3.RateLimitService'
/** The wire-compatible subset of Envoy's RLS v3 messages (proto/rls.proto). */
export const RLS_PROTO = fileURLToPath(new URL('../../../proto/rls.proto', import.meta.url))

/** The service's definition as grpc-js takes it: snake_case fields, enums by name, 64-bit numbers as numbers, proto3's defaults filled in. */
export function rlsDefinition (): ServiceDefinition {
  const pkg = loadSync(RLS_PROTO, { keepCase: true, longs: Number, enums: String, defaults: true, arrays: true })
  return pkg[RLS_SERVICE] as ServiceDefinition
}

/** What a reload of RLS_CONFIG did. */
export type RlsReload = 'applied' | 'unchanged' | 'rejected'

export interface RlsDeps {
  config: Config
  store: Store
  log: FastifyBaseLogger
  registry: Registry
  /** See RlsServiceOptions.refused. */
  refused: (subject: string, policy: string, dryRun: boolean) => void
}

export class RlsListener {
  readonly service: RateLimitService
  // Without channelz's per-call bookkeeping: 2.9% of the service's CPU under load (profiled,
  // 2026-12-06), for a debugging service nothing here serves.
  readonly server = new Server({ 'grpc.enable_channelz': 0 })
  private readonly health = new HealthImplementation({ '': 'SERVING', [RLS_SERVICE]: 'SERVING' })
  private readonly reloads: Counter
  private readonly timer: NodeJS.Timeout | undefined
  private closing: Promise<void> | undefined

  constructor (private readonly deps: RlsDeps) {
    const { config, log } = deps
    const settings = config.rls!
    this.service = new RateLimitService({ store: deps.store, headers: config.headers, timeZone: config.timeZone, config: settings.config, log, registry: deps.registry, dryRun: config.dryRun, refused: deps.refused })
    this.reloads = new Counter({ name: 'gateway_rls_config_reloads_total', help: 'RLS_CONFIG reloads by result', labelNames: ['result'], registers: [deps.registry] })
    const failureLog = createThrottledLog(log, 'error', 'rate limit service question failed')
    const service = this.service
    this.server.addService(rlsDefinition(), {
      ShouldRateLimit (call: ServerUnaryCall<RlsRequest, RlsResponse>, callback: sendUnaryData<RlsResponse>): void {
        const failed = (err: unknown): void => {
          if (err instanceof RlsInvalidError) {
            callback({ code: status.INVALID_ARGUMENT, details: err.message })
            return
          }
          failureLog(err)
          callback({ code: status.UNAVAILABLE, details: `rate limit service failed: ${(err as Error).message}` })
        }
        let answer: RlsResponse | Promise<RlsResponse>
        try {
          answer = service.shouldRateLimit(call.request)
        } catch (err) {
          failed(err)
          return
        }
        if (isPromise(answer)) answer.then(r => { callback(null, r) }, failed)
        else callback(null, answer)
      }
    })
    this.health.addToServer(this.server)
    log.info({ source: settings.config.source, domains: [...settings.config.domains.keys()] }, 'rate limit service config loaded')
    if (config.rulesPollMs > 0) {
      this.timer = setInterval(() => { this.reload() }, config.rulesPollMs)
      this.timer.unref()
    }
  }

  /** Binds RLS_HOST:RLS_PORT; resolves with the port (RLS_PORT=0: the one the system chose). */
  listen (): Promise<number> {
    const { host, port } = this.deps.config.rls!
    const address = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`
    return new Promise((resolve, reject) => {
      this.server.bindAsync(address, ServerCredentials.createInsecure(), (err, bound) => {
        if (err === null) resolve(bound)
        else reject(new Error(`RLS_HOST/RLS_PORT: cannot listen on ${address}: ${err.message}`))
      })
    })
  }

  /** Reads RLS_CONFIG again; a config that does not load leaves the one in force. */
  reload (): RlsReload {
    const { log } = this.deps
    const source = this.service.config.source
    try {
      const docs = readRlsDocuments(source)
      if (rlsSignature(docs) === this.service.config.signature) return 'unchanged'
      const next = parseRlsDocuments(docs, source)
      this.service.config = next
      this.reloads.labels('applied').inc()
      log.info({ source, domains: [...next.domains.keys()] }, 'rate limit service config reloaded')
      return 'applied'
    } catch (err) {
      this.reloads.labels('rejected').inc()
      log.error({ source, reason: (err as Error).message }, 'RLS_CONFIG rejected; the limits in force stay')
      return 'rejected'
    }
  }

  /** Health says NOT_SERVING (Envoy and load balancers stop asking), then the server ends, its calls cut after `timeoutMs`. */
  close (timeoutMs: number): Promise<void> {
    this.closing ??= new Promise<void>(resolve => {
      if (this.timer !== undefined) clearInterval(this.timer)
      this.health.setStatus('', 'NOT_SERVING')
      this.health.setStatus(RLS_SERVICE, 'NOT_SERVING')
      const cut = setTimeout(() => { this.server.forceShutdown() }, timeoutMs)
      this.server.tryShutdown(() => {
        clearTimeout(cut)
        resolve()
      })
    })
    return this.closing
  }
}
