/**
 * OpenTelemetry tracing (on with an OTLP endpoint; config/tracing.ts): a server span per
 * client request, carrying the limiter's decision as attributes (ratelimit.outcome,
 * ratelimit.policy, ratelimit.remaining, ratelimit.client: a digest of the client's key,
 * never an address or an API key), and a client span per upstream call, its W3C
 * `traceparent` sent upstream. A caller's `traceparent` makes the server span its child.
 *
 * Built with the official SDK (BasicTracerProvider, BatchSpanProcessor, the OTLP/HTTP
 * protobuf exporter), loaded only when tracing is on: off, the gateway imports none of it
 * and the hot path pays one undefined check per hook. No context manager: the spans are
 * kept on the request and passed explicitly, so no async context is tracked per request.
 */
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import type { ServerResponse } from 'node:http'
import { defaultTextMapGetter, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Span, type TextMapSetter, type Tracer } from '@opentelemetry/api'
import { setGlobalErrorHandler, W3CTraceContextPropagator } from '@opentelemetry/core'
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto'
import { defaultResource, resourceFromAttributes } from '@opentelemetry/resources'
import { AlwaysOffSampler, AlwaysOnSampler, BasicTracerProvider, BatchSpanProcessor, ParentBasedSampler, TraceIdRatioBasedSampler, type Sampler } from '@opentelemetry/sdk-trace-base'
import {
  ATTR_ERROR_TYPE, ATTR_HTTP_REQUEST_METHOD, ATTR_HTTP_RESPONSE_STATUS_CODE, ATTR_SERVER_ADDRESS, ATTR_SERVER_PORT, ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION, ATTR_URL_FULL, ATTR_URL_PATH, ATTR_URL_SCHEME
} from '@opentelemetry/semantic-conventions'
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import fp from 'fastify-plugin'
import { LRUCache } from 'lru-cache'
import type { SamplerName, TracingSettings } from '../config/tracing.js'
import { createThrottledLog } from '../log.js'
import type { RequestOutcome } from './metrics.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** The request's server span (tracing on); null otherwise. */
    gwSpan: Span | null
  }
}

/** service.version: the package's version (package.json sits two levels above dist/src). */
function packageVersion (): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version
  /* c8 ignore start */
  } catch {
    return 'unknown'
  }
  /* c8 ignore stop */
}

/** The decision's attributes on the server span. */
export const ATTR_OUTCOME = 'ratelimit.outcome'
export const ATTR_POLICY = 'ratelimit.policy'
export const ATTR_REMAINING = 'ratelimit.remaining'
export const ATTR_CLIENT = 'ratelimit.client'

const propagator = new W3CTraceContextPropagator()
/** Adds a trace header to a flat [name, value, ...] header list. */
const setter: TextMapSetter<string[]> = { set: (carrier, key, value) => { carrier.push(key, value) } }

const kSpan = Symbol('gateway.span')
type Traced = ServerResponse & { [kSpan]?: Span }

/** The response is done (or the connection gone): the server span ends with its status. */
function endServerSpan (this: Traced): void {
  const span = this[kSpan]!
  this[kSpan] = undefined
  const status = this.statusCode
  span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, status)
  if (!this.writableFinished) span.setAttribute(ATTR_ERROR_TYPE, 'connection_closed')
  if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR })
  span.end()
}

function sampler (name: SamplerName, ratio: number): Sampler {
  switch (name) {
    case 'always_on': return new AlwaysOnSampler()
    case 'always_off': return new AlwaysOffSampler()
    case 'traceidratio': return new TraceIdRatioBasedSampler(ratio)
    case 'parentbased_always_on': return new ParentBasedSampler({ root: new AlwaysOnSampler() })
    case 'parentbased_always_off': return new ParentBasedSampler({ root: new AlwaysOffSampler() })
    case 'parentbased_traceidratio': return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) })
  }
}

/** The upstream as an upstream span names it: server.address, server.port (the scheme's default when the URL has none). */
export function upstreamPeer (upstreamUrl: string): { address: string, port: number, origin: string } {
  const url = new URL(upstreamUrl)
  const port = url.port !== '' ? Number(url.port) : url.protocol === 'https:' ? 443 : 80
  return { address: url.hostname, port, origin: url.origin }
}

/** The client as the spans show it: 16 hex digits of a SHA-256 of its key (which may itself be an address). */
export function clientDigest (key: string): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 16)
}

/** An upstream call's span, ended by the forwarder. */
export interface UpstreamSpanHandle {
  end (status: number | undefined, error: string | undefined): void
}

class UpstreamSpan implements UpstreamSpanHandle {
  constructor (private readonly span: Span) {}

  end (status: number | undefined, error: string | undefined): void {
    const span = this.span
    if (status !== undefined) span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, status)
    if (error !== undefined) {
      span.setAttribute(ATTR_ERROR_TYPE, error)
      span.setStatus({ code: SpanStatusCode.ERROR })
    } else if (status !== undefined && status >= 400) {
      // A client span is an error from 4xx on (semantic conventions for HTTP clients).
      span.setStatus({ code: SpanStatusCode.ERROR })
    }
    span.end()
  }
}

/** The upstream call of a request that is not sampled: nothing to record. */
const UNRECORDED: UpstreamSpanHandle = { end () {} }

export class Tracing {
  readonly provider: BasicTracerProvider
  private readonly tracer: Tracer
  private readonly upstreamAddress: string
  private readonly upstreamPort: number
  private readonly upstreamOrigin: string
  private readonly exportFailed: (err?: unknown, extra?: Record<string, unknown>) => void
  private readonly url: string
  /** The digests of the clients seen last: a busy client is hashed once, not per request. */
  private readonly digests = new LRUCache<string, string>({ max: 10_000 })

  constructor (settings: TracingSettings, upstreamUrl: string | undefined, log: FastifyBaseLogger) {
    const version = packageVersion()
    // The SDK reports a failed export (collector down, refused, timed out) to its global
    // error handler: a warning, at most one a minute; the spans of that batch are dropped.
    const exportFailed = createThrottledLog(log, 'warn', 'tracing: span export failed (spans dropped)', 60_000)
    this.exportFailed = exportFailed
    this.url = settings.url
    setGlobalErrorHandler(err => { exportFailed(err, { url: settings.url }) })
    const resource = defaultResource()
      .merge(resourceFromAttributes({ [ATTR_SERVICE_VERSION]: version, ...settings.resourceAttributes }))
      .merge(resourceFromAttributes({ [ATTR_SERVICE_NAME]: settings.serviceName }))
    const exporter = new OTLPTraceExporter({
      url: settings.url,
      headers: { ...settings.headers },
      timeoutMillis: settings.timeoutMs,
      compression: settings.compression as never
    })
    this.provider = new BasicTracerProvider({
      resource,
      sampler: sampler(settings.sampler, settings.samplerArg),
      spanProcessors: [new BatchSpanProcessor(exporter, { ...settings.batch })]
    })
    this.tracer = this.provider.getTracer('ratelimit-gateway', version)
    // Without an upstream (MODE=decision) there are no upstream spans.
    const peer = upstreamUrl === undefined ? { address: '', port: 0, origin: '' } : upstreamPeer(upstreamUrl)
    this.upstreamAddress = peer.address
    this.upstreamPort = peer.port
    this.upstreamOrigin = peer.origin
  }

  /**
   * The onRequest hook, first of all: the request's server span, a child of the caller's
   * `traceparent` if it sent one, ended when the response closes (refusals included: they
   * are written straight to the response).
   */
  readonly plugin = fp(async (app: FastifyInstance) => {
    const tracer = this.tracer
    app.decorateRequest('gwSpan', null)
    app.addHook('onRequest', function startServerSpan (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) {
      const raw = request.raw
      const url = raw.url!
      const query = url.indexOf('?')
      const method = raw.method!
      const parent = raw.headers.traceparent === undefined ? ROOT_CONTEXT : propagator.extract(ROOT_CONTEXT, raw.headers, defaultTextMapGetter)
      const span = tracer.startSpan(method, {
        kind: SpanKind.SERVER,
        attributes: { [ATTR_HTTP_REQUEST_METHOD]: method, [ATTR_URL_PATH]: query === -1 ? url : url.slice(0, query), [ATTR_URL_SCHEME]: request.protocol }
      }, parent)
      request.gwSpan = span
      // Not sampled: nothing to end or record (its context still goes upstream).
      if (span.isRecording()) {
        const res = reply.raw as Traced
        res[kSpan] = span
        // 'close' comes once per response: `on` spares `once`'s wrapper.
        res.on('close', endServerSpan)
      }
      done()
    })
  }, { name: 'gateway-tracing', fastify: '5.x' })

  /** What the limiter decided for the request: attributes of its server span (if sampled). */
  decided (request: FastifyRequest, outcome: RequestOutcome, client: string | undefined, policy: string | undefined, remaining: number | undefined): void {
    // Set by the plugin's hook, which runs before the limiter's wherever tracing is on.
    const span = request.gwSpan!
    if (!span.isRecording()) return
    span.setAttribute(ATTR_OUTCOME, outcome)
    if (client !== undefined) {
      let digest = this.digests.get(client)
      if (digest === undefined) {
        digest = clientDigest(client)
        this.digests.set(client, digest)
      }
      span.setAttribute(ATTR_CLIENT, digest)
    }
    if (policy !== undefined) span.setAttribute(ATTR_POLICY, policy)
    if (remaining !== undefined) span.setAttribute(ATTR_REMAINING, remaining)
  }

  /**
   * The upstream call of a forwarded request begins: a client span, child of the request's,
   * whose `traceparent` (and `tracestate`) replace any the client sent in `headers`.
   */
  upstream (request: FastifyRequest, headers: string[], method: string, path: string): UpstreamSpanHandle {
    for (let i = headers.length - 2; i >= 0; i -= 2) {
      const name = headers[i]!.toLowerCase()
      if (name === 'traceparent' || name === 'tracestate') headers.splice(i, 2)
    }
    const server = request.gwSpan!
    // Not sampled: no upstream span either; the upstream learns the trace and that it is
    // not sampled from the server span's own context.
    if (!server.isRecording()) {
      propagator.inject(trace.setSpan(ROOT_CONTEXT, server), headers, setter)
      return UNRECORDED
    }
    const parent = trace.setSpan(ROOT_CONTEXT, server)
    const query = path.indexOf('?')
    const span = this.tracer.startSpan(method, {
      kind: SpanKind.CLIENT,
      attributes: {
        [ATTR_HTTP_REQUEST_METHOD]: method,
        [ATTR_SERVER_ADDRESS]: this.upstreamAddress,
        [ATTR_SERVER_PORT]: this.upstreamPort,
        [ATTR_URL_FULL]: this.upstreamOrigin + (query === -1 ? path : path.slice(0, query))
      }
    }, parent)
    propagator.inject(trace.setSpan(ROOT_CONTEXT, span), headers, setter)
    return new UpstreamSpan(span)
  }

  /** Exports what is still buffered, then stops (after the listeners have closed); a failed export is logged, never thrown. */
  async close (): Promise<void> {
    await this.provider.shutdown().catch((err: unknown) => { this.exportFailed(err, { url: this.url }) })
  }
}
