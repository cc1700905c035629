/**
 * `npm run bench`: the gateway against the speed limit of a Node proxy, side by side in one
 * run on one machine. Every target is started once; then ROUNDS rounds run each target in
 * turn (interleaved, so drift in the machine hits all alike) for DURATION_S under a load
 * generator in its own process; medians are reported, with the ratios the project targets,
 * and written to bench/RESULTS.md. Everything listens on 127.0.0.1 and stops by itself.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { cpus, tmpdir, totalmem } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'

const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 4)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 4)
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50)
const WARMUP_S = 1
/** The fixed-rate latency phase: this many requests/s for this long, per target and round. */
const LATENCY_RATE = Number(process.env.BENCH_LATENCY_RATE ?? 500)
const LATENCY_S = Number(process.env.BENCH_LATENCY_S ?? 3)
/** Targets whose added latency is checked (the others are measured for throughput only). */
const LATENCY_TARGETS = ['minimal', 'off', 'memory', 'redis']
const CLIENT_COUNTS = [100_000, 1_000_000]
const HERE = fileURLToPath(new URL('.', import.meta.url))
const ROOT = join(HERE, '..', '..')
const CLK_TCK = 100

interface Target {
  name: string
  label: string
  url: string
  pid?: number
  /** Redis whose commands to count per request. */
  redis?: Redis
}

interface Sample { rps: number, p50: number, p99: number, cpu: number, rss: number, redisPerRequest: number | undefined, non2xx: number, requests: number, fixedP50?: number, fixedP99?: number, cpuUsPerRequest?: number }

/** The fixed-rate latency probe (bench/latency.ts) against one URL. */
function latencyAtFixedRate (url: string): { p50: number, p99: number } {
  return JSON.parse(execFileSync(...onHelperCore(process.execPath, [join(HERE, 'latency.js'), url, String(LATENCY_RATE), String(LATENCY_S)]), { encoding: 'utf8' }))
}

const children: ChildProcess[] = []
const cleanup: Array<() => unknown> = []

/** `wrk` (default when installed) or `autocannon`: BENCH_TOOL picks one. */
const TOOL = process.env.BENCH_TOOL ?? (hasCommand('wrk') ? 'wrk' : 'autocannon')

function hasCommand (cmd: string): boolean {
  try { execFileSync('which', [cmd], { stdio: 'ignore' }); return true } catch { return false }
}

const has = hasCommand

/**
 * With 2+ cores and taskset, the process under test gets core 0 to itself and everything
 * else (load generator, upstream, Redis) runs on core 1: each target is measured at the
 * capacity of one dedicated core instead of fighting the load generator for both.
 */
const PIN = cpus().length >= 2 && process.env.BENCH_PIN !== '0' && hasCommand('taskset')
const onTargetCore = (cmd: string, args: string[]): [string, string[]] => PIN ? ['taskset', ['-c', '0', cmd, ...args]] : [cmd, args]
const onHelperCore = (cmd: string, args: string[]): [string, string[]] => PIN ? ['taskset', ['-c', '1', cmd, ...args]] : [cmd, args]

async function freePort (): Promise<number> {
  const s = createServer().listen(0, '127.0.0.1')
  await once(s, 'listening')
  const port = (s.address() as { port: number }).port
  await new Promise(resolve => s.close(resolve))
  return port
}

function start (core: 'target' | 'helper', command: string, argv: string[], env: Record<string, string> = {}): ChildProcess {
  const [cmd, args] = core === 'target' ? onTargetCore(command, argv) : onHelperCore(command, argv)
  const child = spawn(cmd, args, { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'ignore', 'inherit'] })
  children.push(child)
  return child
}

async function waitFor (port: number, path = '/', deadlineMs = 15_000): Promise<void> {
  const until = Date.now() + deadlineMs
  for (;;) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}${path}`)
      await res.arrayBuffer()
      return
    } catch {}
    if (Date.now() > until) throw new Error(`nothing answered on ${port}`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

/** CPU ticks of a process and its children (nginx's worker runs under its master). */
function cpuTicks (pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
  let ticks = Number(fields[11]) + Number(fields[12])
  for (const child of readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean)) ticks += cpuTicks(Number(child))
  return ticks
}

function rssBytes (pid: number): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024
}

/**
 * Round trips to Redis: the script calls (EVALSHA, EVAL) the gateway sends. INFO
 * commandstats also counts the commands a script runs inside Redis (TIME, GET, SET),
 * which cost no round trip; those are left out.
 */
async function redisCalls (redis: Redis): Promise<number> {
  const info = await redis.info('commandstats')
  let calls = 0
  for (const m of info.matchAll(/^cmdstat_(evalsha|eval):calls=(\d+)/gm)) calls += Number(m[2])
  return calls
}

const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]! }

/** One load run against a URL: wrk when installed, autocannon otherwise. */
function load (url: string, seconds: number): { rps: number, p50: number, p99: number, non2xx: number, requests: number } {
  if (TOOL === 'wrk') {
    const out = execFileSync(...onHelperCore('wrk', ['-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, '--latency', url]), { encoding: 'utf8' })
    const ms = (s: string): number => {
      const m = /([\d.]+)(us|ms|s)/.exec(s)!
      return Number(m[1]) * (m[2] === 'us' ? 0.001 : m[2] === 's' ? 1000 : 1)
    }
    const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0)
    return {
      rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)![1]),
      p50: ms(/\s50%\s+(\S+)/.exec(out)![1]!),
      p99: ms(/\s99%\s+(\S+)/.exec(out)![1]!),
      non2xx,
      requests: Number(/(\d+) requests in/.exec(out)![1])
    }
  }
  const out = JSON.parse(execFileSync(...onHelperCore(join(ROOT, 'node_modules', '.bin', 'autocannon'), ['-c', String(CONNECTIONS), '-d', String(seconds), '--json', url]), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }))
  return { rps: out.requests.average, p50: out.latency.p50, p99: out.latency.p99, non2xx: out.non2xx, requests: out.requests.total }
}

async function measure (t: Target): Promise<Sample> {
  const ticks = t.pid ? cpuTicks(t.pid) : 0
  const calls = t.redis ? await redisCalls(t.redis) : 0
  const started = process.hrtime.bigint()
  const r = load(t.url, DURATION_S)
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  return {
    ...r,
    cpu: t.pid ? (cpuTicks(t.pid) - ticks) / CLK_TCK / seconds : NaN,
    rss: t.pid ? rssBytes(t.pid) : NaN,
    redisPerRequest: t.redis ? ((await redisCalls(t.redis)) - calls) / Math.max(1, r.requests) : undefined
  }
}

function nginxConfig (dir: string, port: number, upstreamPort: number): string {
  const conf = join(dir, 'nginx.conf')
  writeFileSync(conf, `
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  limit_req_zone $binary_remote_addr zone=clients:10m rate=100000r/s;
  upstream app { server 127.0.0.1:${upstreamPort}; keepalive 128; }
  server {
    listen 127.0.0.1:${port};
    location / {
      limit_req zone=clients burst=1000000 nodelay;
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`)
  return conf
}

async function main (): Promise<void> {
  const node = process.execPath
  const upstreamPort = await freePort()
  start('helper', node, [join(HERE, 'upstream.js'), String(upstreamPort)])
  await waitFor(upstreamPort)
  const upstream = `http://127.0.0.1:${upstreamPort}`

  const redisPort = await freePort()
  start('helper', 'redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning'])
  const redis = new Redis({ port: redisPort, host: '127.0.0.1', retryStrategy: (n: number) => (n > 50 ? null : 100) })
  redis.on('error', () => {})
  await redis.ping()
  cleanup.push(() => redis.disconnect())

  const targets: Target[] = [{ name: 'upstream', label: '(a) upstream directly', url: `${upstream}/ping` }]

  const proxyPort = await freePort()
  const proxy = start('target', node, [join(HERE, 'minimal-proxy.js'), String(proxyPort), upstream])
  await waitFor(proxyPort)
  targets.push({ name: 'minimal', label: '(b) minimal Node proxy (node:http + undici Pool)', url: `http://127.0.0.1:${proxyPort}/ping`, pid: proxy.pid! })

  // Allowed traffic: one client, a limit it never reaches (the maximum rate, a huge burst).
  const allowed = { RATE_LIMIT_RATE: '100000/s', RATE_LIMIT_BURST: '1000000000' }
  const gateways: Array<[string, string, Record<string, string>, boolean]> = [
    ['off', '(c) gateway, limiting off', { RATE_LIMIT_ENABLED: 'false' }, false],
    ['memory', '(d) gateway, memory store', allowed, false],
    ['redis', '(e) gateway, Redis store', { ...allowed, STORE: 'redis', REDIS_URL: `redis://127.0.0.1:${redisPort}`, REDIS_KEY_PREFIX: 'bench-e:' }, true],
    ['reject', '(f) rejection path (Redis store, client far over its limit)', { RATE_LIMIT_RATE: '1/h', RATE_LIMIT_BURST: '1', STORE: 'redis', REDIS_URL: `redis://127.0.0.1:${redisPort}`, REDIS_KEY_PREFIX: 'bench-f:' }, true]
  ]
  for (const [name, label, env, usesRedis] of gateways) {
    const port = await freePort()
    const adminPort = await freePort()
    const gw = start('target', node, [join(ROOT, 'dist', 'src', 'server.js')], { UPSTREAM_URL: upstream, HOST: '127.0.0.1', PORT: String(port), ADMIN_PORT: String(adminPort), LOG_LEVEL: 'warn', ...env })
    await waitFor(adminPort, '/healthz')
    targets.push({ name, label, url: `http://127.0.0.1:${port}/ping`, pid: gw.pid!, ...(usesRedis ? { redis } : {}) })
  }

  if (has('nginx')) {
    const dir = mkdtempSync(join(tmpdir(), 'gw-bench-nginx-'))
    const port = await freePort()
    const nginx = start('target', 'nginx', ['-c', nginxConfig(dir, port, upstreamPort), '-p', dir, '-g', 'daemon off;'])
    await waitFor(port)
    targets.push({ name: 'nginx', label: '(g) nginx 1 worker, limit_req', url: `http://127.0.0.1:${port}/ping`, pid: nginx.pid! })
  }

  const tool = TOOL === 'wrk' ? `wrk -t1 -c${CONNECTIONS}` : `autocannon -c ${CONNECTIONS}`
  process.stdout.write(`load: ${tool}, ${DURATION_S} s per run, ${ROUNDS} rounds, interleaved\n`)
  for (const t of targets) load(t.url, WARMUP_S)
  const samples = new Map<string, Sample[]>(targets.map(t => [t.name, []]))
  for (let round = 1; round <= ROUNDS; round++) {
    for (const t of targets) {
      const s = await measure(t)
      if (LATENCY_TARGETS.includes(t.name)) {
        const ticks = cpuTicks(t.pid!)
        const l = latencyAtFixedRate(t.url)
        s.fixedP50 = l.p50
        s.fixedP99 = l.p99
        // The probe sends a warm-up second too: (LATENCY_S + 1) × LATENCY_RATE requests.
        s.cpuUsPerRequest = (cpuTicks(t.pid!) - ticks) / CLK_TCK * 1e6 / ((LATENCY_S + 1) * LATENCY_RATE)
      }
      samples.get(t.name)!.push(s)
      process.stdout.write(`round ${round} ${t.name.padEnd(9)} ${s.rps.toFixed(0).padStart(7)} req/s  p50 ${s.p50.toFixed(2)} ms  p99 ${s.p99.toFixed(2)} ms${s.non2xx ? `  non-2xx ${s.non2xx}` : ''}${s.fixedP99 !== undefined ? `  at ${LATENCY_RATE}/s: p50 ${s.fixedP50!.toFixed(3)} p99 ${s.fixedP99.toFixed(3)} ms, CPU ${s.cpuUsPerRequest!.toFixed(0)} µs/request` : ''}\n`)
    }
  }

  const med = (name: string, key: keyof Sample): number => median(samples.get(name)!.map(s => s[key] as number))
  const rows = targets.map(t => {
    const redisPer = t.redis ? med(t.name, 'redisPerRequest') : undefined
    const latencyTarget = LATENCY_TARGETS.includes(t.name)
    const fixed = latencyTarget ? `${med(t.name, 'fixedP50').toFixed(3)} / ${med(t.name, 'fixedP99').toFixed(3)}` : '—'
    const cpuPer = latencyTarget ? med(t.name, 'cpuUsPerRequest').toFixed(0) : '—'
    return `| ${t.label} | ${med(t.name, 'rps').toFixed(0)} | ${med(t.name, 'p50').toFixed(2)} | ${med(t.name, 'p99').toFixed(2)} | ${fixed} | ${cpuPer} | ${t.pid ? (med(t.name, 'cpu') * 100).toFixed(0) + '%' : '—'} | ${t.pid ? (med(t.name, 'rss') / 2 ** 20).toFixed(0) + ' MiB' : '—'} | ${redisPer === undefined ? '—' : redisPer.toFixed(3)} |`
  })

  const perClient = CLIENT_COUNTS.map(n => {
    const out = execFileSync(node, ['--expose-gc', join(HERE, 'memory-per-client.js'), String(n)], { encoding: 'utf8' })
    return JSON.parse(out) as { clients: number, rssBytes: number, heapBytes: number }
  })

  const rps = (name: string) => med(name, 'rps')
  /** Capacity when the process is the bottleneck: requests per CPU-second. */
  const capacity = (name: string) => 1e6 / med(name, 'cpuUsPerRequest')
  const p99 = (name: string) => med(name, 'fixedP99')
  const checks: Array<[string, string, boolean]> = [
    ['memory store ≥ 0.9× minimal proxy (req/s)', (rps('memory') / rps('minimal')).toFixed(2) + '×', rps('memory') >= 0.9 * rps('minimal')],
    ['Redis store ≥ 0.8× minimal proxy (req/s)', (rps('redis') / rps('minimal')).toFixed(2) + '×', rps('redis') >= 0.8 * rps('minimal')],
    ['limiting on (memory) ≥ 0.95× limiting off (req/s)', (rps('memory') / rps('off')).toFixed(2) + '×', rps('memory') >= 0.95 * rps('off')],
    ['limiting on (memory) ≥ 0.95× limiting off (capacity = 1 / CPU per request)', (capacity('memory') / capacity('off')).toFixed(2) + '×', capacity('memory') >= 0.95 * capacity('off')],
    ['memory store ≥ 0.9× minimal proxy (capacity)', (capacity('memory') / capacity('minimal')).toFixed(2) + '×', capacity('memory') >= 0.9 * capacity('minimal')],
    ['Redis store ≥ 0.8× minimal proxy (capacity)', (capacity('redis') / capacity('minimal')).toFixed(2) + '×', capacity('redis') >= 0.8 * capacity('minimal')],
    ['rejection path ≥ 2× minimal proxy', (rps('reject') / rps('minimal')).toFixed(2) + '×', rps('reject') >= 2 * rps('minimal')],
    ['Redis round trips per request for a known-blocked client = 0', med('reject', 'redisPerRequest').toFixed(4), med('reject', 'redisPerRequest') < 0.001],
    ['p99 added by limiting ≤ 1 ms (memory)', (p99('memory') - p99('off')).toFixed(2) + ' ms', p99('memory') - p99('off') <= 1],
    ['p99 added by limiting ≤ 2 ms (Redis)', (p99('redis') - p99('off')).toFixed(2) + ' ms', p99('redis') - p99('off') <= 2],
    ...perClient.map(c => [`≤ 150 bytes RSS per tracked client (${c.clients.toLocaleString('en')} clients)`, `${c.rssBytes.toFixed(0)} B (heap ${c.heapBytes.toFixed(0)} B)`, c.rssBytes <= 150] as [string, string, boolean])
  ]

  const cpu = cpus()[0]?.model ?? 'unknown CPU'
  const nginxVersion = has('nginx') ? execFileSync('nginx', ['-v'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }) : ''
  const report = `# Benchmark results

Latest \`npm run bench\`: ${new Date().toISOString().slice(0, 10)}, ${cpus().length} cores (${cpu}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}${nginxVersion ? ', nginx installed' : ''}.
Load: \`${tool}\`, ${DURATION_S} s per run, ${ROUNDS} interleaved rounds, medians; one client (127.0.0.1), \`GET /ping\` answered by a minimal upstream.
Added latency (the p99 checks) comes from a separate fixed-rate phase: ${LATENCY_RATE} requests/s for ${LATENCY_S} s (\`bench/latency.ts\`), where latency is the work a request costs rather than queueing on a saturated machine.
${PIN ? 'Each process under test runs alone on core 0 (taskset); load generator, upstream and Redis share core 1, so a target is measured at the capacity of one core.' : `Load generator, upstream, proxy under test (and Redis) share the same ${cpus().length} cores, so absolute numbers are low and noisy: compare the ratios.`}

| target | req/s | p50 ms | p99 ms | p50 / p99 ms at ${LATENCY_RATE}/s | CPU µs/request at ${LATENCY_RATE}/s | CPU | RSS | Redis round trips/request |
|---|---:|---:|---:|---:|---:|---:|---:|---:|
${rows.join('\n')}

| target | measured | met |
|---|---:|:---:|
${checks.map(([name, value, ok]) => `| ${name} | ${value} | ${ok ? 'yes' : '**no**'} |`).join('\n')}

CPU is the process's user+system time over the run (100% = one core). CPU µs/request is
that time during the fixed-rate phase divided by its requests: the capacity ratios
(1 / CPU per request) are a second view of how the targets compare when each is the
bottleneck (at a low fixed rate, per-wake-up costs weigh more than under saturation). Memory per tracked
client is the memory store fed that many distinct client addresses through \`consume()\`
(\`bench/memory-per-client.ts\`), RSS and V8 heap growth divided by the count.
`
  writeFileSync(join(ROOT, 'bench', 'RESULTS.md'), report)
  process.stdout.write('\n' + report)
}

async function shutdown (): Promise<void> {
  for (const fn of cleanup) await fn()
  for (const child of children) if (child.exitCode === null) child.kill('SIGTERM')
  await new Promise(resolve => setTimeout(resolve, 300))
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
}

main().then(shutdown, async (err: unknown) => {
  process.stderr.write(`bench failed: ${(err as Error).stack}\n`)
  await shutdown()
  process.exitCode = 1
})
