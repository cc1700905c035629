/**
 * Forwarding to the upstream. HTTP requests take the hot path in forward.ts (undici's
 * Pool.dispatch, the response written straight to the client); WebSocket upgrades go
 * through @fastify/http-proxy, whose routes only upgrade requests can reach (a route
 * constraint), so both pass the same onRequest hooks: hygiene, then the limiter.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import httpProxy from '@fastify/http-proxy'
import type { IncomingMessage } from 'node:http'
import { Forwarder, type ForwardOptions } from './forward.js'

export type ProxyOptions = Omit<ForwardOptions, 'log'>

/** Methods proxied; anything else gets the gateway's 404 without reaching the upstream. */
export const PROXIED_METHODS = ['DELETE', 'GET', 'HEAD', 'PATCH', 'POST', 'PUT', 'OPTIONS'] as const

/**
 * Routes that only WebSocket upgrade requests match (find-my-way constraint). Any other
 * request, even one asking for another upgrade, matches the HTTP routes: its Upgrade
 * header is hop-by-hop and dropped there.
 */
const UPGRADE = {
  name: 'upgrade',
  storage () {
    const handlers = new Map<string, unknown>()
    return {
      get: (value: string) => handlers.get(value) ?? null,
      set: (value: string, store: unknown) => { handlers.set(value, store) }
    }
  },
  deriveConstraint (req: IncomingMessage): string | undefined {
    const upgrade = req.headers.upgrade
    return upgrade !== undefined && upgrade.toLowerCase() === 'websocket' ? 'websocket' : undefined
  },
  mustMatchWhenDerived: true
}

export async function registerProxy (app: FastifyInstance, opts: ProxyOptions): Promise<Forwarder> {
  const forwarder = new Forwarder({ ...opts, log: app.log })
  // After the server has closed and its in-flight requests are done (or were cut at
  // SHUTDOWN_TIMEOUT_MS): what they still wait for upstream is abandoned.
  app.addHook('onClose', async () => { await forwarder.close() })

  app.addConstraintStrategy(UPGRADE as never)
  await app.register(httpProxy, {
    upstream: opts.upstreamUrl,
    httpMethods: ['GET'],
    constraints: { upgrade: 'websocket' },
    websocket: true,
    disableRequestLogging: true
  } as never)

  await app.register(async function httpRoutes (scope) {
    // Bodies are never parsed: the request stream is the upstream request's body.
    scope.removeAllContentTypeParsers()
    scope.addContentTypeParser('*', function passThrough (_request, _payload, done) { done(null) })
    const handler = function forward (request: FastifyRequest, reply: FastifyReply): void { forwarder.forward(request, reply) }
    scope.route({ method: [...PROXIED_METHODS], url: '/', handler })
    scope.route({ method: [...PROXIED_METHODS], url: '/*', handler })
  })
  return forwarder
}
