/**
 * OpenTelemetry tracing, end to end: the gateway exports over OTLP/HTTP (protobuf) to a
 * receiver here, which decodes each export with the official OpenTelemetry protobuf
 * definitions (opentelemetry-proto's .proto files, held in test/fixtures/otlp-proto)
 * through protobufjs; the upstream (/echo) shows the traceparent it received.
 */
import t from 'tap'
import { once } from 'node:events'
import { createServer } from 'node:http'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import pino from 'pino'
import protobuf from 'protobufjs'
import { loadConfig } from '../../src/config/index.js'
import { Tracing, upstreamPeer } from '../../src/observe/tracing.js'
import { errorType } from '../../src/proxy/forward.js'
import { Client } from 'undici'
import { rulesFile, startGateway } from '../helpers/gateway.js'
import { startRedis } from '../helpers/redis.js'
import { send } from '../helpers/http.js'
import { eventually } from '../helpers/load.js'
import { captureLogs } from '../helpers/logs.js'
import type { Teardown } from '../helpers/tap.js'
import { startReceiver as startBodyReceiver } from '../helpers/receiver.js'
import { startUpstream } from '../helpers/upstream.js'

// Held in the test tree (test/fixtures/otlp-proto), so no stale exporter package is installed for them.
const PROTOS = fileURLToPath(new URL('../../../test/fixtures/otlp-proto/', import.meta.url))
const root = new protobuf.Root()
root.resolvePath = (_origin, target) => join(PROTOS, target)
root.loadSync('opentelemetry/proto/collector/trace/v1/trace_service.proto')
const ExportTraceServiceRequest = root.lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest')

/** Span kinds and status codes as trace.proto numbers them. */
const SERVER = 2
const CLIENT = 3
const STATUS_ERROR = 2

interface Decoded {
  traceId: string
  spanId: string
  parentSpanId: string
  name: string
  kind: number
  attributes: Record<string, string | number>
  status: { code: number }
  resource: Record<string, string | number>
}

/** An OTLP/HTTP receiver: each POST /v1/traces decoded, spans flattened with their resource. */
async function startReceiver (t: Teardown): Promise<{ url: string, spans: Decoded[], raw: Buffer[], contentTypes: string[] }> {
  const spans: Decoded[] = []
  const raw: Buffer[] = []
  const contentTypes: string[] = []
  const url = await startBodyReceiver(t, (body, req) => {
    raw.push(body)
    contentTypes.push(String(req.headers['content-type']))
    const message = ExportTraceServiceRequest.toObject(ExportTraceServiceRequest.decode(body), { longs: Number, bytes: String, enums: Number, defaults: true }) as {
      resourceSpans: Array<{ resource: { attributes: KeyValue[] }, scopeSpans: Array<{ spans: Array<Omit<Decoded, 'attributes' | 'resource' | 'traceId' | 'spanId' | 'parentSpanId'> & { traceId: string, spanId: string, parentSpanId: string, attributes: KeyValue[] }> }> }>
    }
    for (const rs of message.resourceSpans) {
      for (const ss of rs.scopeSpans) {
        for (const s of ss.spans) {
          spans.push({
            ...s,
            traceId: hex(s.traceId),
            spanId: hex(s.spanId),
            parentSpanId: hex(s.parentSpanId),
            attributes: attributes(s.attributes),
            resource: attributes(rs.resource.attributes)
          })
        }
      }
    }
    return { headers: { 'content-type': 'application/x-protobuf' } }
  })
  return { url, spans, raw, contentTypes }
}

interface KeyValue { key: string, value: { stringValue?: string, intValue?: number, boolValue?: boolean, doubleValue?: number } }

function attributes (list: KeyValue[]): Record<string, string | number> {
  const out: Record<string, string | number> = {}
  for (const kv of list) {
    const v = kv.value
    out[kv.key] = v.stringValue !== undefined && v.stringValue !== '' ? v.stringValue : v.intValue !== undefined && v.intValue !== 0 ? v.intValue : v.doubleValue ?? v.stringValue ?? v.intValue ?? String(v.boolValue)
  }
  return out
}

/** protobufjs renders bytes as base64: trace and span ids in hex, as traceparent writes them. */
function hex (base64: string): string {
  return Buffer.from(base64, 'base64').toString('hex')
}

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736'
const CALLER_SPAN = '00f067aa0ba902b7'

t.test('a server span per request with the decision, the upstream call as its child, traceparent sent upstream', async t => {
  const receiver = await startReceiver(t)
  const upstream = await startUpstream(t)
  const gw = await startGateway(t, {
    UPSTREAM_URL: upstream.url,
    RATE_LIMIT_RATE: '1/m',
    RATE_LIMIT_BURST: '2',
    API_KEYS: 'secret-key-for-tracing',
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    OTEL_BSP_SCHEDULE_DELAY: '50',
    OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment=test,service.name=ignored'
  })
  // A caller already tracing: the gateway's server span is its child.
  const first = await send(`${gw.url}/echo/a?token=hidden`, { from: '127.0.0.2', headers: { traceparent: `00-${TRACE_ID}-${CALLER_SPAN}-01`, tracestate: 'vendor=1' } })
  t.equal(first.status, 200)
  const seen = JSON.parse(first.body) as { headers: Record<string, string> }
  await send(`${gw.url}/echo/b`, { from: '127.0.0.2' })
  const refused = await send(`${gw.url}/echo/c`, { from: '127.0.0.2' })
  t.equal(refused.status, 429)
  const keyed = await send(`${gw.url}/echo/d`, { from: '127.0.0.3', headers: { 'x-api-key': 'secret-key-for-tracing' } })
  t.equal(keyed.status, 200)

  t.ok(await eventually(() => receiver.spans.length >= 7, 10_000), `spans exported: ${receiver.spans.length} (4 server, 3 upstream)`)
  t.ok(receiver.contentTypes.every(c => c === 'application/x-protobuf'), 'OTLP/HTTP, protobuf')
  const servers = receiver.spans.filter(s => s.kind === SERVER)
  const clients = receiver.spans.filter(s => s.kind === CLIENT)
  t.equal(servers.length, 4)
  t.equal(clients.length, 3, 'no upstream span for the refused request')
  const byPath = (path: string) => servers.find(s => s.attributes['url.path'] === path)!

  const a = byPath('/echo/a')
  t.equal(a.traceId, TRACE_ID, 'the caller\'s trace')
  t.equal(a.parentSpanId, CALLER_SPAN, 'the caller\'s span is the parent')
  t.match(a, { name: 'GET', attributes: { 'http.request.method': 'GET', 'url.scheme': 'http', 'http.response.status_code': 200, 'ratelimit.outcome': 'allowed', 'ratelimit.policy': 'default', 'ratelimit.remaining': 1 } })
  t.match(a.attributes['ratelimit.client'], /^[0-9a-f]{16}$/, 'the client as a digest')
  t.equal(a.resource['service.name'], 'ratelimit-gateway', 'OTEL_SERVICE_NAME\'s default (not OTEL_RESOURCE_ATTRIBUTES\' service.name)')
  t.equal(a.resource['deployment.environment'], 'test', 'OTEL_RESOURCE_ATTRIBUTES')
  t.match(a.resource['service.version'], /^\d+\.\d+\.\d+/)
  const call = clients.find(s => s.parentSpanId === a.spanId)!
  t.ok(call, 'the upstream call is a child of the server span')
  t.equal(call.traceId, TRACE_ID)
  t.match(call, { name: 'GET', attributes: { 'http.request.method': 'GET', 'server.address': '127.0.0.1', 'server.port': upstream.port, 'url.full': `${upstream.url}/echo/a`, 'http.response.status_code': 200 } })
  t.equal(seen.headers.traceparent, `00-${TRACE_ID}-${call.spanId}-01`, 'the upstream sees the upstream call\'s traceparent')
  t.equal(seen.headers.tracestate, 'vendor=1', 'and the caller\'s tracestate')

  const b = byPath('/echo/b')
  t.not(b.traceId, TRACE_ID, 'no traceparent: a new trace')
  t.equal(b.parentSpanId, '', 'a root span')
  t.equal(b.attributes['ratelimit.remaining'], 0)
  t.equal(b.attributes['ratelimit.client'], a.attributes['ratelimit.client'], 'the same client, the same digest')
  const c = byPath('/echo/c')
  t.match(c.attributes, { 'ratelimit.outcome': 'limited', 'ratelimit.policy': 'default', 'ratelimit.remaining': 0, 'http.response.status_code': 429 })
  t.equal(c.status.code, 0, 'a 429 is not a server error')
  const d = byPath('/echo/d')
  t.equal(d.attributes['ratelimit.outcome'], 'allowed')
  t.not(d.attributes['ratelimit.client'], a.attributes['ratelimit.client'])
  const everything = Buffer.concat(receiver.raw).toString('latin1')
  t.notOk(everything.includes('secret-key-for-tracing'), 'no API key anywhere in the export')
  t.notOk(everything.includes('127.0.0.2') || everything.includes('127.0.0.3'), 'no client address anywhere in the export')
  t.notOk(everything.includes('token=hidden'), 'no query string')
})

t.test('an upstream failure: the upstream span says what went wrong, the server span is an error', async t => {
  const receiver = await startReceiver(t)
  const gw = await startGateway(t, { UPSTREAM_URL: 'http://127.0.0.1:1', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${receiver.url}/v1/traces`, OTEL_BSP_SCHEDULE_DELAY: '50' })
  t.equal((await send(`${gw.url}/down`)).status, 502)
  t.ok(await eventually(() => receiver.spans.length >= 2, 10_000))
  const server = receiver.spans.find(s => s.kind === SERVER)!
  const client = receiver.spans.find(s => s.kind === CLIENT)!
  t.match(server, { attributes: { 'http.response.status_code': 502 }, status: { code: STATUS_ERROR } })
  t.match(client, { parentSpanId: server.spanId, attributes: { 'error.type': 'ECONNREFUSED' }, status: { code: STATUS_ERROR } })
  t.notOk('http.response.status_code' in client.attributes, 'the upstream never answered')
})

t.test('the standard variables: OTEL_TRACES_SAMPLER, a caller that did not sample, OTEL_SERVICE_NAME, OTEL_SDK_DISABLED', async t => {
  const receiver = await startReceiver(t)
  const upstream = await startUpstream(t)
  const off = await startGateway(t, { UPSTREAM_URL: upstream.url, OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_BSP_SCHEDULE_DELAY: '50', OTEL_TRACES_SAMPLER: 'always_off' })
  const unsampled = JSON.parse((await send(`${off.url}/echo`)).body) as { headers: Record<string, string> }
  t.match(unsampled.headers.traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/, 'always_off: the trace is propagated, not sampled')

  const named = await startGateway(t, { UPSTREAM_URL: upstream.url, OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_BSP_SCHEDULE_DELAY: '50', OTEL_SERVICE_NAME: 'edge-gateway' })
  const notSampledByCaller = JSON.parse((await send(`${named.url}/echo`, { headers: { traceparent: `00-${TRACE_ID}-${CALLER_SPAN}-00` } })).body) as { headers: Record<string, string> }
  t.match(notSampledByCaller.headers.traceparent, new RegExp(`^00-${TRACE_ID}-[0-9a-f]{16}-00$`), 'parentbased_always_on (the default): the caller\'s decision stands')
  await send(`${named.url}/ping`)
  t.ok(await eventually(() => receiver.spans.length >= 2, 10_000))
  t.equal(receiver.spans.length, 2, 'only the sampled request\'s two spans')
  t.ok(receiver.spans.every(s => s.resource['service.name'] === 'edge-gateway' && s.traceId !== TRACE_ID))

  const disabled = await startGateway(t, { UPSTREAM_URL: upstream.url, OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_SDK_DISABLED: 'true' })
  t.equal(disabled.app.config.tracing, undefined, 'OTEL_SDK_DISABLED=true: off')
  const passed = JSON.parse((await send(`${disabled.url}/echo`, { headers: { traceparent: `00-${TRACE_ID}-${CALLER_SPAN}-01` } })).body) as { headers: Record<string, string> }
  t.equal(passed.headers.traceparent, `00-${TRACE_ID}-${CALLER_SPAN}-01`, 'tracing off: the client\'s traceparent goes upstream untouched')
})

t.test('the decision listener: a server span per question, about the original request', async t => {
  const receiver = await startReceiver(t)
  const gw = await startGateway(t, { MODE: 'decision', DECISION_PORT: '0', RATE_LIMIT_RATE: '1/m', RATE_LIMIT_BURST: '1', OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_BSP_SCHEDULE_DELAY: '50' })
  t.equal((await send(`${gw.decisionUrl}/auth`, { headers: { 'x-forwarded-uri': '/api/orders?id=1', 'x-forwarded-method': 'POST' } })).status, 200)
  t.equal((await send(`${gw.decisionUrl}/auth`, { headers: { 'x-forwarded-uri': '/api/orders', 'x-forwarded-method': 'POST' } })).status, 429)
  t.ok(await eventually(() => receiver.spans.length >= 2, 10_000))
  t.same(receiver.spans.map(s => [s.kind, s.name, s.attributes['url.path'], s.attributes['ratelimit.outcome'], s.attributes['http.response.status_code']]), [
    [SERVER, 'POST', '/api/orders', 'allowed', 200],
    [SERVER, 'POST', '/api/orders', 'limited', 429]
  ])
})

t.test('close() exports the spans still buffered', async t => {
  const receiver = await startReceiver(t)
  const upstream = await startUpstream(t)
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_BSP_SCHEDULE_DELAY: '600000' })
  await send(`${gw.url}/ping`)
  t.equal(receiver.spans.length, 0, 'buffered (the export is 10 minutes away)')
  await gw.app.close()
  t.equal(receiver.spans.length, 2, 'exported on close')
})

t.test('a collector that is down: a warning (throttled), the requests unharmed', async t => {
  const upstream = await startUpstream(t)
  const { logger, lines } = captureLogs('info')
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:1', OTEL_BSP_SCHEDULE_DELAY: '20', OTEL_EXPORTER_OTLP_TIMEOUT: '2000' }, { logger })
  t.ok(lines.some(l => l.msg === 'tracing on: spans exported over OTLP/HTTP' && l.url === 'http://127.0.0.1:1/v1/traces'), 'start-up says where spans go')
  for (let i = 0; i < 3; i++) t.equal((await send(`${gw.url}/ping`)).status, 200)
  t.ok(await eventually(() => lines.some(l => l.msg === 'tracing: span export failed (spans dropped)'), 10_000), 'the failed export is logged')
  await send(`${gw.url}/ping`)
  await gw.app.close()
  t.equal(lines.filter(l => l.msg === 'tracing: span export failed (spans dropped)').length, 1, 'once a minute at most')
})

t.test('every OTEL_TRACES_SAMPLER, as a root span sees it', async t => {
  const cases: Array<[string, string, boolean]> = [
    ['always_on', '0', true], ['always_off', '1', false],
    ['traceidratio', '1', true], ['traceidratio', '0', false],
    ['parentbased_always_on', '0', true], ['parentbased_always_off', '1', false],
    ['parentbased_traceidratio', '1', true], ['parentbased_traceidratio', '0', false]
  ]
  for (const [sampler, arg, sampled] of cases) {
    const config = loadConfig({ UPSTREAM_URL: 'http://127.0.0.1:8080', OTEL_TRACES_EXPORTER: 'otlp', OTEL_TRACES_SAMPLER: sampler, OTEL_TRACES_SAMPLER_ARG: arg })
    const tracing = new Tracing(config.tracing!, undefined, pino({ level: 'silent' }))
    t.equal(tracing.provider.getTracer('test').startSpan('root').isRecording(), sampled, `${sampler} ${arg}: ${sampled ? 'sampled' : 'not sampled'}`)
    await tracing.close()
  }
})

t.test('a 4xx upstream answer, a client gone mid-request, an upstream gone mid-body: each span says so', async t => {
  const receiver = await startReceiver(t)
  const upstream = await startUpstream(t)
  // An upstream that sends its headers and part of the body, then drops the connection.
  const dropping = createServer((req, res) => {
    req.resume()
    res.writeHead(200, { 'content-length': '1000' })
    res.write('partial')
    setTimeout(() => res.socket?.destroy(), 20)
  })
  dropping.listen(0, '127.0.0.1')
  await once(dropping, 'listening')
  t.teardown(() => { dropping.closeAllConnections(); dropping.close() })
  const env = { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_BSP_SCHEDULE_DELAY: '20' }
  const gw = await startGateway(t, { ...env, UPSTREAM_URL: upstream.url })
  const gwDropping = await startGateway(t, { ...env, UPSTREAM_URL: `http://127.0.0.1:${(dropping.address() as { port: number }).port}` })

  t.equal((await send(`${gw.url}/status/404`)).status, 404)
  // The client gives up while the upstream takes its time.
  await send(`${gw.url}/slow?ms=3000`, { signal: AbortSignal.timeout(200) }).catch(() => {})
  await send(`${gwDropping.url}/file`).catch(() => {})
  t.ok(await eventually(() => receiver.spans.length >= 6, 10_000), `${receiver.spans.length} spans`)
  const pair = (path: string) => {
    const server = receiver.spans.find(s => s.kind === SERVER && s.attributes['url.path'] === path)!
    return { server, client: receiver.spans.find(s => s.kind === CLIENT && s.parentSpanId === server.spanId)! }
  }
  const notFound = pair('/status/404')
  t.match(notFound.client, { attributes: { 'http.response.status_code': 404 }, status: { code: STATUS_ERROR } }, 'a 4xx is an error of the upstream call')
  t.equal(notFound.server.status.code, 0, 'not of the server span')
  const gone = pair('/slow')
  t.match(gone.client.attributes, { 'error.type': 'client_aborted' })
  t.match(gone.server.attributes, { 'error.type': 'connection_closed' })
  const dropped = pair('/file')
  t.match(dropped.client, { attributes: { 'http.response.status_code': 200, 'error.type': /^(UND_ERR_SOCKET|ECONNRESET|.+Error)$/ }, status: { code: STATUS_ERROR } })
  t.match(dropped.server.attributes, { 'http.response.status_code': 200, 'error.type': 'connection_closed' }, 'the client\'s response was cut too')
})

t.test('every outcome on the server span: allowlisted, skipped, in-flight limit, dry run, leaky-bucket delay, store error', async t => {
  const receiver = await startReceiver(t)
  const upstream = await startUpstream(t)
  const rules = rulesFile(t, [
    { name: 'health', path: '/health', skip: true },
    { name: 'held', path: '/slow', concurrency: 1 },
    { name: 'trial', path: '/trial', rate: '1/m', dryRun: true },
    { name: 'leaky', path: '/leaky', algorithm: 'leaky-bucket', rate: '20/s', burst: 1, maxDelayMs: 1000 }
  ])
  const env = { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_BSP_SCHEDULE_DELAY: '20' }
  const gw = await startGateway(t, { ...env, UPSTREAM_URL: upstream.url, ALLOWLIST: '127.0.0.9', RATE_LIMIT_RULES_FILE: rules })
  await send(`${gw.url}/ping`, { from: '127.0.0.9' })
  await send(`${gw.url}/health`)
  await Promise.all([send(`${gw.url}/slow?ms=300`), send(`${gw.url}/slow?ms=300`)])
  await send(`${gw.url}/trial`)
  await send(`${gw.url}/trial`)
  await Promise.all([send(`${gw.url}/leaky`), send(`${gw.url}/leaky`)])
  const redis = await startRedis(t)
  const closed = await startGateway(t, { ...env, UPSTREAM_URL: upstream.url, STORE: 'redis', REDIS_URL: redis.url, STORE_FAILURE_MODE: 'closed' })
  await redis.kill()
  t.equal((await send(`${closed.url}/store-down`)).status, 503)

  const outcome = (path: string) => receiver.spans.filter(s => s.kind === SERVER && s.attributes['url.path'] === path).map(s => s.attributes['ratelimit.outcome']).sort()
  t.ok(await eventually(() => outcome('/store-down').length === 1 && outcome('/leaky').length === 2, 10_000))
  t.same(outcome('/ping'), ['allowlisted'])
  t.notOk('ratelimit.client' in receiver.spans.find(s => s.attributes['url.path'] === '/ping')!.attributes, 'an allowlisted client is not identified')
  t.same(outcome('/health'), ['skipped'])
  t.same(outcome('/slow'), ['allowed', 'concurrency_limited'])
  t.match(receiver.spans.find(s => s.attributes['ratelimit.outcome'] === 'concurrency_limited')!.attributes, { 'ratelimit.policy': 'held', 'ratelimit.remaining': 0, 'http.response.status_code': 429 })
  t.same(outcome('/trial'), ['allowed', 'dry_run_would_limit'])
  t.same(outcome('/leaky'), ['allowed', 'delayed'])
  const storeDown = receiver.spans.find(s => s.attributes['url.path'] === '/store-down')!
  t.match(storeDown, { attributes: { 'ratelimit.outcome': 'store_error', 'http.response.status_code': 503 }, status: { code: STATUS_ERROR } })
})

t.test('an upstream too slow, a client gone once the response began', async t => {
  const receiver = await startReceiver(t)
  const upstream = await startUpstream(t)
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, UPSTREAM_TIMEOUT_MS: '100', OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_BSP_SCHEDULE_DELAY: '20' })
  t.equal((await send(`${gw.url}/slow?ms=2000`)).status, 504)
  // The client reads the headers of a large body, then leaves (a client of its own, closed
  // with the request).
  const client = new Client(gw.url.replace(/\/$/, ''))
  const big = await client.request({ path: '/big?bytes=50000000', method: 'GET' })
  t.equal(big.statusCode, 200)
  big.body.destroy()
  await client.destroy()
  t.ok(await eventually(() => receiver.spans.length >= 4, 10_000))
  const clientOf = (path: string) => {
    const server = receiver.spans.find(s => s.kind === SERVER && s.attributes['url.path'] === path)!
    return receiver.spans.find(s => s.kind === CLIENT && s.parentSpanId === server.spanId)!
  }
  t.match(clientOf('/slow').attributes, { 'error.type': 'timeout' })
  t.notOk('http.response.status_code' in clientOf('/slow').attributes)
  t.match(clientOf('/big').attributes, { 'error.type': 'client_aborted', 'http.response.status_code': 200 })
})

t.test('the upstream\'s address and port on its spans; an error\'s type', async t => {
  t.same(upstreamPeer('http://web:8080/base'), { address: 'web', port: 8080, origin: 'http://web:8080' })
  t.same(upstreamPeer('http://web'), { address: 'web', port: 80, origin: 'http://web' })
  t.same(upstreamPeer('https://web'), { address: 'web', port: 443, origin: 'https://web' })
  t.equal(errorType(Object.assign(new Error('refused'), { code: 'ECONNREFUSED' })), 'ECONNREFUSED')
  t.equal(errorType(new TypeError('no code')), 'TypeError')
})
