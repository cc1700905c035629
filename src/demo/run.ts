/**
 * `npm run demo`: the quick start. Starts the demo upstream on DEMO_UPSTREAM_PORT (8080)
 * and the gateway in front of it on :8000 with the memory store and a small burst, then
 * prints what to try. Any gateway variable set in the environment still wins.
 */
import { once } from 'node:events'
import { createDemoUpstream } from './upstream.js'
import { main } from '../server.js'

const upstreamPort = Number(process.env.DEMO_UPSTREAM_PORT ?? 8080)
const upstream = createDemoUpstream()
upstream.listen(upstreamPort, '127.0.0.1')
await once(upstream, 'listening')

const env = {
  UPSTREAM_URL: `http://127.0.0.1:${upstreamPort}`,
  RATE_LIMIT_RATE: '1/s',
  RATE_LIMIT_BURST: '5',
  API_KEYS: 'demo-key-1:pro,demo-key-2',
  RATE_LIMIT_TIERS: 'pro=10/s:20',
  ...process.env
}
const running = await main(env)
if (running === undefined) {
  upstream.close()
} else {
  const port = running.app.config.port
  const adminPort = running.app.config.adminPort
  process.stdout.write(`
Demo upstream on http://127.0.0.1:${upstreamPort}, gateway on http://127.0.0.1:${port} (burst ${running.app.config.limit.burst}, refill ${running.app.config.limit.rate.text}).
Try:
  curl -i http://127.0.0.1:${port}/ping
  for i in $(seq 1 ${running.app.config.limit.burst + 1}); do curl -s -o /dev/null -w '%{http_code}\\n' http://127.0.0.1:${port}/ping; done   # the last one is 429
  curl -i -H 'x-api-key: demo-key-1' http://127.0.0.1:${port}/ping                # tier "pro": its own bucket of 20
  curl -i -H 'x-api-key: demo-key-2' http://127.0.0.1:${port}/ping                # a key without a tier: the default limit
  curl -s -X POST --data 'hello' http://127.0.0.1:${port}/echo
  curl -s http://127.0.0.1:${adminPort}/readyz
Ctrl-C to stop.
`)
  const stopUpstream = () => { upstream.close(); upstream.closeAllConnections() }
  process.once('SIGINT', stopUpstream)
  process.once('SIGTERM', stopUpstream)
}
