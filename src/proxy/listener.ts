/**
 * The client-facing Fastify instance, before any hook or route: its logger, the client
 * timeouts (headers, whole request, idle keep-alive), problem+json for what Node's parser
 * refuses, for unexpected errors and for methods the gateway never proxies.
 */
import type { Server } from 'node:http'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import type { Config } from '../config/index.js'
import { ConfigError, BadRequestError, HeadersTooLargeError, InternalError, PROBLEM_CONTENT_TYPE_UTF8, renderProblem, RequestTimeoutError, RouteNotFoundError, sendProblem, statusTitle } from '../errors.js'

/** How often Node checks client connections against the header and request timeouts. */
export const CONNECTIONS_CHECK_MS = 1_000
/** What Node 20 adds to keepAliveTimeout before it closes an idle socket. */
const NODE20_KEEP_ALIVE_BUFFER_MS = 1_000
const INTERNAL = new InternalError()

/**
 * The server's keep-alive settings for an idle timeout. Node keeps an idle socket open a
 * buffer past the advertised `Keep-Alive: timeout=`, so that a client reusing it right at
 * that limit is not cut off: 1 s fixed on Node 20, `keepAliveTimeoutBuffer` (settable) from
 * Node 24 on. The socket must close at `idleMs`: the advertised part is what is left.
 */
export function keepAliveTimeouts (idleMs: number, bufferSettable: boolean): { keepAliveTimeout: number, bufferMs: number } {
  const bufferMs = bufferSettable ? Math.min(NODE20_KEEP_ALIVE_BUFFER_MS, Math.floor(idleMs / 4)) : NODE20_KEEP_ALIVE_BUFFER_MS
  return { keepAliveTimeout: Math.max(1, idleMs - bufferMs), bufferMs }
}

/** A raw response for a request Node's parser refused or cut: no route, no reply object. */
function rawProblem (status: number, error: { message: string, code: string }): string {
  const body = renderProblem(status, error.message, error.code)
  return `HTTP/1.1 ${status} ${statusTitle(status)}\r\nContent-Type: ${PROBLEM_CONTENT_TYPE_UTF8}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`
}
const REQUEST_TIMEOUT_RESPONSE = rawProblem(408, new RequestTimeoutError())
const HEADERS_TOO_LARGE_RESPONSE = rawProblem(431, new HeadersTooLargeError())
const MALFORMED_RESPONSE = rawProblem(400, new BadRequestError('the request is not valid HTTP/1.1'))

/**
 * Requests the HTTP parser refused or the request timeouts cut, answered like every other
 * gateway error (problem+json with a code) instead of fastify's own JSON shape.
 */
function clientErrorHandler (err: Error & { code?: string }, socket: Duplex): void {
  // Nobody left to answer (a reset, or the client has stopped reading): just close.
  if (socket.writable) {
    socket.write(err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? REQUEST_TIMEOUT_RESPONSE
      : (err.code === 'HPE_HEADER_OVERFLOW' ? HEADERS_TOO_LARGE_RESPONSE : MALFORMED_RESPONSE))
  }
  socket.destroy()
}

/**
 * @param isTrusted proxy-addr's trust function for TRUST_PROXY (which X-Forwarded-For hops
 *                  are believed)
 */
export function createGatewayListener (config: Config, log: FastifyBaseLogger, isTrusted: (address: string, hop: number) => boolean, name = 'gateway'): FastifyInstance {
  const gatewayLog = log.child({ listener: name })
  // Fastify is given no logger: with one, every request made a child logger (validated),
  // stamped its start and listened for its 'finish' to log a line the gateway keeps off
  // (a failed request is an attacker's log flood; the gateway's own warnings are
  // throttled or aggregated). That was 1.0-1.5% of the CPU of a proxied request (perf,
  // this VM, Node 24, 2026-12-06). The instance's own log, which plugins and Fastify's
  // start-up and shutdown lines use, is this listener's: set before anything registers.
  // request.log and reply.log are silent.
  const gateway = Fastify({
    // Slow clients: headers within REQUEST_HEADERS_TIMEOUT_MS (slowloris), the whole
    // request within REQUEST_TIMEOUT_MS (slow bodies), checked every second; a silent
    // connection closed after CLIENT_IDLE_TIMEOUT_MS.
    // Host is checked by the hygiene hook, which answers problem+json (Node's own 400 is empty).
    http: { headersTimeout: config.headersTimeoutMs, connectionsCheckingInterval: CONNECTIONS_CHECK_MS, requireHostHeader: false },
    requestTimeout: config.requestTimeoutMs,
    connectionTimeout: config.clientIdleTimeoutMs,
    // proxy-addr picks the right-most untrusted X-Forwarded-For hop; no list, no trust.
    trustProxy: config.trustProxy.length > 0 ? isTrusted : false,
    return503OnClosing: true,
    // Else Fastify still builds an 'incoming request' line per request, for the silent logger.
    logController: new LogController({ disableRequestLogging: true }),
    clientErrorHandler
  })
  ;(gateway as { log: FastifyBaseLogger }).log = gatewayLog

  // An idle keep-alive connection closes CLIENT_IDLE_TIMEOUT_MS after its last response.
  const server = gateway.server as unknown as { keepAliveTimeout: number, keepAliveTimeoutBuffer?: number }
  const idle = keepAliveTimeouts(config.clientIdleTimeoutMs, 'keepAliveTimeoutBuffer' in server)
  server.keepAliveTimeout = idle.keepAliveTimeout
  server.keepAliveTimeoutBuffer = idle.bufferMs

  trackUnused(gateway.server)

  // Anything unexpected: a problem+json body that gives nothing away.
  gateway.setErrorHandler((err: Error & { statusCode?: number, code?: string }, _request, reply) => {
    const status = err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500
    if (status === 500) gatewayLog.error({ err }, 'request failed')
    sendProblem(reply, status, status === 500 ? renderProblem(500, INTERNAL.message, INTERNAL.code) : renderProblem(status, err.message, err.code))
  })

  // Methods the gateway never proxies (TRACE, CONNECT, ...): after the limiter has decided.
  const notProxied = renderProblem(404, new RouteNotFoundError('the gateway does not forward this method').message, 'GW_NOT_FOUND')
  gateway.setNotFoundHandler(function notFound (_request, reply) {
    sendProblem(reply, 404, notProxied)
  })
  return gateway
}

/** Each listener's open client connections (tracked per connection, never per request). */
const connections = new WeakMap<Server, Set<Socket>>()

function trackUnused (server: Server): void {
  const open = new Set<Socket>()
  connections.set(server, open)
  server.on('connection', (socket: Socket) => {
    open.add(socket)
    socket.once('close', () => { open.delete(socket) })
  })
}

/**
 * While draining: closes the connections that have not sent a byte (a client's spare
 * connection, a load balancer's pre-opened one). Node's closeIdleConnections() leaves them
 * to the idle timeout, which held a drain for up to CLIENT_IDLE_TIMEOUT_MS; closing one
 * before its first request is safe (a client retries a request it never sent).
 */
export function closeUnusedConnections (server: Server): void {
  // Every client-facing listener is made here, so every one is tracked.
  for (const socket of connections.get(server)!) if (socket.bytesRead === 0) socket.destroy()
}

/** While draining, how often connections that have gone idle are closed. */
export const DRAIN_SWEEP_MS = 50

/**
 * Closes client-facing listeners, letting in-flight requests finish. server.close() closes
 * the connections idle at that moment only; a keep-alive connection whose in-flight request
 * finishes later would hold the drain open, and so would one that never sent a request:
 * both are swept every DRAIN_SWEEP_MS until every listener has closed.
 */
export async function drain (listeners: readonly FastifyInstance[]): Promise<void> {
  const sweep = setInterval(() => {
    for (const l of listeners) {
      l.server.closeIdleConnections()
      closeUnusedConnections(l.server)
    }
  }, DRAIN_SWEEP_MS)
  try {
    await Promise.all(listeners.map(async l => await l.close()))
  } finally {
    clearInterval(sweep)
  }
}

/**
 * Listens, or throws a ConfigError naming the variables that chose the address (a name
 * that does not resolve, a port in use). `reusePort`: several threads on one port (WORKERS).
 */
export async function listenOn (server: FastifyInstance, port: number, host: string, variables: string, reusePort = false): Promise<void> {
  try {
    await server.listen(reusePort ? { port, host, reusePort } as { port: number, host: string } : { port, host })
  } catch (err) {
    throw new ConfigError(`${variables}: cannot listen on ${host}:${port}: ${(err as Error).message}`)
  }
}
