/**
 * The Fastify floors (issue 26): what any Fastify-based gateway pays before it decides
 * anything. `node dist/bench/fastify-floor.js PORT UPSTREAM_URL [refuse]`: Fastify with an
 * onRequest hook that does nothing and a catch-all route forwarding with undici's
 * dispatch (the forward floor); with `refuse`, a hook that answers every request with a
 * fixed 429 and nothing else (the refusal floor).
 */
import Fastify from 'fastify'
import { Pool, type Dispatcher } from 'undici'
import { Handler, headersOf } from './dispatch-handler.js'

const [port, upstream, refuse] = [Number(process.argv[2]), process.argv[3]!, process.argv[4] === 'refuse']
const pool = new Pool(upstream, { connections: 128, pipelining: 1 })
const app = Fastify({ logger: false })
const TOO_MANY = '{"status":429}'
app.addHook('onRequest', (_request, reply, done) => {
  if (!refuse) {
    done()
    return
  }
  // As the gateway refuses: the reply taken over, written raw, the lifecycle not resumed.
  reply.hijack()
  reply.raw.writeHead(429, ['content-type', 'application/json', 'content-length', String(TOO_MANY.length)])
  reply.raw.end(TOO_MANY)
})
app.all('/*', (request, reply) => {
  reply.hijack()
  pool.dispatch({ path: request.url, method: request.method as Dispatcher.HttpMethod, headers: headersOf(request.raw), body: null }, new Handler(reply.raw) as unknown as Dispatcher.DispatchHandler)
})
await app.listen({ port, host: '127.0.0.1' })
process.on('SIGTERM', () => process.exit(0))
