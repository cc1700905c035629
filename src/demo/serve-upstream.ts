/**
 * The demo upstream as a program of its own (the `web` service of docker-compose.yml):
 * listens on DEMO_UPSTREAM_PORT (8080) on all interfaces, stops on SIGTERM.
 */
import { createDemoUpstream } from './upstream.js'

const port = Number(process.env.DEMO_UPSTREAM_PORT ?? 8080)
const server = createDemoUpstream()
server.listen(port, '0.0.0.0', () => process.stdout.write(`demo upstream listening on ${port}\n`))
const stop = () => { server.close(); server.closeAllConnections() }
process.once('SIGTERM', stop)
process.once('SIGINT', stop)
