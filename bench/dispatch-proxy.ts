/**
 * The ceiling for a Node proxy: node:http in, undici's Pool.dispatch out, raw headers
 * passed both ways, the body written as it comes, with backpressure, and nothing else (no
 * routing, no header hygiene, no timeouts). `node dist/bench/dispatch-proxy.js PORT UPSTREAM_URL`
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { Pool, type Dispatcher } from 'undici'
import { Handler, headersOf } from './dispatch-handler.js'

const [port, upstream] = [Number(process.argv[2]), process.argv[3]!]
const pool = new Pool(upstream, { connections: 128, pipelining: 1 })

createServer((req: IncomingMessage, res: ServerResponse) => {
  pool.dispatch({ path: req.url!, method: req.method as Dispatcher.HttpMethod, headers: headersOf(req), body: req.method === 'GET' || req.method === 'HEAD' ? null : req }, new Handler(res) as unknown as Dispatcher.DispatchHandler)
}).listen(port, '127.0.0.1')
process.on('SIGTERM', () => process.exit(0))
