/**
 * `npm run soak` (not in CI): the gateway process on Redis under mixed traffic for
 * SOAK_SECONDS (default 60), while faults come and go: Redis killed and restarted, Redis
 * paused, its script cache flushed, the upstream killed and restarted. Prints the
 * hostile suite's figures: requests sent, answered by class, lost (no answer at all),
 * what the upstream answered, crashes, and the gateway's memory over the run.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { Agent, request } from 'undici'
import { Redis } from 'ioredis'
import { freePort, HERE, ROOT, runBench, rssBytes, start, startUpstream, waitFor } from './harness.js'

const SECONDS = Number(process.env.SOAK_SECONDS ?? 60)
const CONNECTIONS = Number(process.env.SOAK_CONNECTIONS ?? 32)
const TOKEN = 'soak-admin-token-0123456789'

interface Figures { sent: number, answered: Record<string, number>, lost: number, upstream2xx: number, upstreamFailures: number, storeErrors: number, crashes: number, rssStartMiB: number, rssPeakMiB: number, rssEndMiB: number, faults: string[] }

async function main (): Promise<void> {
  const started = await startUpstream()
  const upstreamPort = started.port
  let upstream: ChildProcess = started.child
  const redisPort = await freePort()
  const redisArgs = ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning']
  let redis: ChildProcess = start('helper', 'redis-server', redisArgs)
  // Queues commands until redis-server listens, and reconnects after each fault.
  const admin = new Redis({ port: redisPort, host: '127.0.0.1', retryStrategy: () => 200 })
  admin.on('error', () => {})
  await admin.ping()

  const port = await freePort()
  const adminPort = await freePort()
  const gateway = spawn(process.execPath, [join(ROOT, 'dist', 'src', 'server.js')], {
    env: {
      PATH: process.env.PATH ?? '', UPSTREAM_URL: `http://127.0.0.1:${upstreamPort}`, HOST: '127.0.0.1', PORT: String(port), ADMIN_PORT: String(adminPort),
      ADMIN_TOKEN: TOKEN, LOG_LEVEL: 'error', STORE: 'redis', REDIS_URL: `redis://127.0.0.1:${redisPort}`, REDIS_PROBE_INTERVAL_MS: '200',
      TRUST_PROXY: '127.0.0.1', API_KEYS: 'soak-key-1:pro,soak-key-2', RATE_LIMIT_TIERS: 'pro=200/s:400', RATE_LIMIT_RATE: '20/s', RATE_LIMIT_BURST: '40',
      RATE_LIMIT_BAN_AFTER: '500', RATE_LIMIT_BAN_DURATION: '5s', UPSTREAM_TIMEOUT_MS: '2000', NODE_OPTIONS: '--max-old-space-size=256'
    },
    stdio: ['ignore', 'inherit', 'inherit']
  })
  let crashed = false
  gateway.on('exit', code => { if (code !== 0) crashed = true })
  await waitFor(adminPort, '/healthz')

  const figures: Figures = { sent: 0, answered: {}, lost: 0, upstream2xx: 0, upstreamFailures: 0, storeErrors: 0, crashes: 0, rssStartMiB: rssBytes(gateway.pid!) / 2 ** 20, rssPeakMiB: 0, rssEndMiB: 0, faults: [] }
  const agent = new Agent({ connections: CONNECTIONS })
  const until = Date.now() + SECONDS * 1000
  let n = 0
  const loops = Array.from({ length: CONNECTIONS }, async (_, w) => {
    while (Date.now() < until) {
      const i = n++
      // A mix: many anonymous clients, one noisy one, API keys, bodies.
      const headers: Record<string, string> = { 'x-forwarded-for': i % 10 === 0 ? '203.0.113.66' : `10.0.${(i >> 8) & 255}.${i & 255}` }
      if (i % 7 === 0) headers['x-api-key'] = i % 14 === 0 ? 'soak-key-1' : 'soak-key-2'
      const post = i % 5 === 0
      figures.sent++
      try {
        const res = await request(`http://127.0.0.1:${port}/${post ? 'echo' : 'ping'}?w=${w}`, { dispatcher: agent, method: post ? 'POST' : 'GET', headers, body: post ? 'x'.repeat(1024) : undefined })
        await res.body.dump()
        const k = `${Math.floor(res.statusCode / 100)}xx`
        figures.answered[k] = (figures.answered[k] ?? 0) + 1
      } catch {
        figures.lost++
      }
    }
  })

  // Faults, one every few seconds, in turn.
  const faults = [
    async () => { redis.kill('SIGKILL'); await sleep(1500); redis = start('helper', 'redis-server', redisArgs) },
    async () => { redis.kill('SIGSTOP'); await sleep(1000); redis.kill('SIGCONT') },
    async () => { await admin.script('FLUSH').catch(() => {}) },
    async () => { upstream.kill('SIGKILL'); await sleep(1000); upstream = start('helper', process.execPath, [join(HERE, 'upstream.js'), String(upstreamPort)]) }
  ]
  const names = ['redis killed, restarted 1.5 s later', 'redis paused 1 s', 'redis script cache flushed', 'upstream killed, restarted 1 s later']
  const chaos = (async () => {
    for (let f = 0; Date.now() < until - 4000; f++) {
      await sleep(3000)
      figures.faults.push(names[f % faults.length]!)
      await faults[f % faults.length]!()
    }
  })()
  const sampler = setInterval(() => { if (!crashed) figures.rssPeakMiB = Math.max(figures.rssPeakMiB, rssBytes(gateway.pid!) / 2 ** 20) }, 500)
  await Promise.all([...loops, chaos])
  clearInterval(sampler)
  await agent.close()

  if (!crashed) {
    figures.rssEndMiB = rssBytes(gateway.pid!) / 2 ** 20
    const metrics = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text()
    const metric = (re: RegExp) => [...metrics.matchAll(re)].reduce((n, m) => n + Number(m[1]), 0)
    figures.upstream2xx = metric(/^gateway_upstream_responses_total\{class="2xx"\} (\d+)/gm)
    // The 5xx answers: the upstream down (502) or slow (504), never the limiter's store.
    figures.upstreamFailures = metric(/^gateway_upstream_failures_total\{kind="\w+"\} (\d+)/gm)
    figures.storeErrors = metric(/^gateway_requests_total\{outcome="store_error"\} (\d+)/gm)
    gateway.kill('SIGTERM')
    await new Promise(resolve => gateway.once('exit', resolve))
  }
  figures.crashes = crashed ? 1 : 0
  admin.disconnect()
  const round = (x: number) => Math.round(x)
  process.stdout.write(`soak: ${SECONDS} s, ${CONNECTIONS} connections\n` + JSON.stringify({ ...figures, rssStartMiB: round(figures.rssStartMiB), rssPeakMiB: round(figures.rssPeakMiB), rssEndMiB: round(figures.rssEndMiB) }, null, 2) + '\n')
  if (figures.lost > 0 || figures.crashes > 0) process.exitCode = 1
}

const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms))

runBench(main)
