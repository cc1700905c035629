/**
 * The ceiling for any Node proxy: node:http in, an undici Pool out, bodies piped, nothing
 * else. `node dist/bench/minimal-proxy.js PORT UPSTREAM_URL`.
 */
import { createServer } from 'node:http'
import { Pool } from 'undici'

const [port, upstream] = [Number(process.argv[2]), process.argv[3]!]
const pool = new Pool(upstream, { connections: 128, pipelining: 1 })

createServer((req, res) => {
  pool.request({ method: req.method as 'GET', path: req.url!, headers: req.headers as Record<string, string>, body: req.method === 'GET' || req.method === 'HEAD' ? null : req })
    .then(({ statusCode, headers, body }) => {
      res.writeHead(statusCode, headers as Record<string, string>)
      body.pipe(res)
    }, () => { res.statusCode = 502; res.end() })
}).listen(port, '127.0.0.1')
process.on('SIGTERM', () => process.exit(0))
