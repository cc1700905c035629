/**
 * References built from the libraries people reach for: fastify + @fastify/http-proxy
 * alone, and with @fastify/rate-limit (memory store) in front.
 * `node dist/bench/fastify-proxy.js PORT UPSTREAM_URL [MAX_PER_MINUTE]`: with a third
 * argument, @fastify/rate-limit allows that many requests per minute per IP.
 */
import Fastify from 'fastify'
import httpProxy from '@fastify/http-proxy'
import rateLimit from '@fastify/rate-limit'

const [port, upstream, max] = [Number(process.argv[2]), process.argv[3]!, process.argv[4]]
const app = Fastify({ logger: false })
if (max !== undefined) await app.register(rateLimit, { max: Number(max), timeWindow: 60_000 })
await app.register(httpProxy, { upstream, undici: { connections: 128, pipelining: 1 } } as never)
await app.listen({ port, host: '127.0.0.1' })
process.on('SIGTERM', () => process.exit(0))
