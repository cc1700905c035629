/**
 * The Fastify floors (issue 26): what any Fastify-based gateway pays before it decides
 * anything. `node dist/bench/fastify-floor.js PORT UPSTREAM_URL [refuse]`: Fastify with an
 * onRequest hook that does nothing and a catch-all route forwarding with undici's
 * dispatch (the forward floor); with `refuse`, a hook that answers every request with a
 * fixed 429 and nothing else (the refusal floor). With `pair` (Node >= 22.12): the forward
 * floor in two processes on PORT with reusePort, this one and a copy it forks (which ends
 * with it): two event loops sharing nothing, each answering half the connections, what
 * any two workers of a Node proxy cost before they share anything (bench/workers.ts).
 */
import { fork } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import Fastify from 'fastify'
import { Pool, type Dispatcher } from 'undici'
import { Handler, headersOf } from './dispatch-handler.js'

const [port, upstream, mode] = [Number(process.argv[2]), process.argv[3]!, process.argv[4]]
const refuse = mode === 'refuse'
/** One of a pair: this process started it (`pair`) or is its copy (`copy`). */
const paired = mode === 'pair' || mode === 'copy'
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
if (mode === 'pair') {
  // The copy listens first; this one once it has, so whoever sees this one answer sees both.
  const copy = fork(fileURLToPath(import.meta.url), [String(port), upstream, 'copy'], { stdio: 'inherit' })
  await once(copy, 'message')
}
await app.listen(paired ? { port, host: '127.0.0.1', reusePort: true } as { port: number, host: string } : { port, host: '127.0.0.1' })
process.on('SIGTERM', () => process.exit(0))
if (mode === 'copy') {
  // Its starter gone (killed, even with SIGKILL: the IPC channel closes), it goes too.
  process.on('disconnect', () => process.exit(0))
  process.send!('listening')
}
