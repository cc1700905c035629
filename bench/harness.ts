/**
 * What the benchmarks share: the target processes (pinned to their own core when the
 * machine allows), the load generator (wrk or autocannon), CPU, memory and Redis
 * round-trip accounting. Everything listens on 127.0.0.1; cleanup stops what was started.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { cpus } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'

export const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 4)
export const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 4)
export const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50)
export const WARMUP_S = 1
/** The fixed-rate latency phase: this many requests/s for this long, per target and round. */
export const LATENCY_RATE = Number(process.env.BENCH_LATENCY_RATE ?? 500)
export const LATENCY_S = Number(process.env.BENCH_LATENCY_S ?? 3)
/** Targets whose added latency is checked (the others are measured for throughput only). */
export const LATENCY_TARGETS = ['minimal', 'off', 'memory', 'redis']
export const CLIENT_COUNTS = [100_000, 1_000_000]
export const HERE = fileURLToPath(new URL('.', import.meta.url))
export const ROOT = join(HERE, '..', '..')
export const CLK_TCK = 100

export interface Target {
  name: string
  label: string
  url: string
  pid?: number
  /** Redis whose commands to count per request. */
  redis?: Redis
  /** redis-server's process, whose CPU is counted per decision. */
  redisPid?: number
}

export interface Sample {
  rps: number
  p50: number
  p99: number
  /** The target's CPU share over the run (1 = one core). */
  cpu: number
  rss: number
  redisPerRequest: number | undefined
  non2xx: number
  requests: number
  /** The target's user+system CPU time over the saturated run / requests answered. */
  saturatedUsPerRequest: number
  /** redis-server's CPU time over the run / decisions it took (EVALSHA calls). */
  redisUsPerDecision?: number
  fixedP50?: number
  fixedP99?: number
  cpuUsPerRequest?: number
}

/** The fixed-rate latency probe (bench/latency.ts) against one URL. */
export function latencyAtFixedRate (url: string, rate = LATENCY_RATE): { p50: number, p99: number } {
  return JSON.parse(execFileSync(...onHelperCore(process.execPath, [join(HERE, 'latency.js'), url, String(rate), String(LATENCY_S)]), { encoding: 'utf8' }))
}

const children: ChildProcess[] = []
const cleanup: Array<() => unknown> = []

/** `wrk` (default when installed) or `autocannon`: BENCH_TOOL picks one. */
export const TOOL = process.env.BENCH_TOOL ?? (hasCommand('wrk') ? 'wrk' : 'autocannon')

export function hasCommand (cmd: string): boolean {
  try { execFileSync('which', [cmd], { stdio: 'ignore' }); return true } catch { return false }
}

export const has = hasCommand

/**
 * With 2+ cores and taskset, the process under test gets core 0 to itself and everything
 * else (load generator, upstream, Redis) runs on core 1: each target is measured at the
 * capacity of one dedicated core instead of fighting the load generator for both.
 */
export const PIN = cpus().length >= 2 && process.env.BENCH_PIN !== '0' && hasCommand('taskset')
export const onTargetCore = (cmd: string, args: string[]): [string, string[]] => PIN ? ['taskset', ['-c', '0', cmd, ...args]] : [cmd, args]
export const onHelperCore = (cmd: string, args: string[]): [string, string[]] => PIN ? ['taskset', ['-c', '1', cmd, ...args]] : [cmd, args]

export async function freePort (): Promise<number> {
  const s = createServer().listen(0, '127.0.0.1')
  await once(s, 'listening')
  const port = (s.address() as { port: number }).port
  await new Promise(resolve => s.close(resolve))
  return port
}

/** Starts a process the bench ends at shutdown: on the target's core, the helpers', or any (`free`). */
export function start (core: 'target' | 'helper' | 'free', command: string, argv: string[], env: Record<string, string> = {}): ChildProcess {
  const [cmd, args] = core === 'target' ? onTargetCore(command, argv) : core === 'helper' ? onHelperCore(command, argv) : [command, argv]
  const child = spawn(cmd, args, { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'ignore', 'inherit'] })
  children.push(child)
  return child
}

export async function waitFor (port: number, path = '/', deadlineMs = 15_000): Promise<void> {
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
export function cpuTicks (pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
  let ticks = Number(fields[11]) + Number(fields[12])
  for (const child of readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean)) ticks += cpuTicks(Number(child))
  return ticks
}

export function rssBytes (pid: number): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024
}

/**
 * Round trips to Redis: the script calls (EVALSHA, EVAL) the gateway sends. INFO
 * commandstats also counts the commands a script runs inside Redis (TIME, GET, SET),
 * which cost no round trip; those are left out.
 */
export async function redisCalls (redis: Redis): Promise<number> {
  const info = await redis.info('commandstats')
  let calls = 0
  for (const m of info.matchAll(/^cmdstat_(evalsha|eval):calls=(\d+)/gm)) calls += Number(m[2])
  return calls
}

export const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]! }

/**
 * One load run against a URL: wrk when installed, autocannon otherwise. `script`: a wrk Lua
 * script shaping each request (wrk only).
 */
export function load (url: string, seconds: number, script?: string): { rps: number, p50: number, p99: number, non2xx: number, requests: number } {
  if (script !== undefined && TOOL !== 'wrk') throw new Error('a request script needs wrk (BENCH_TOOL=wrk)')
  if (TOOL === 'wrk') {
    const out = execFileSync(...onHelperCore('wrk', ['-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, '--latency', ...(script === undefined ? [] : ['-s', script]), url]), { encoding: 'utf8' })
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

export async function measure (t: Target): Promise<Sample> {
  const ticks = t.pid ? cpuTicks(t.pid) : 0
  const redisTicks = t.redisPid ? cpuTicks(t.redisPid) : 0
  const calls = t.redis ? await redisCalls(t.redis) : 0
  const started = process.hrtime.bigint()
  const r = load(t.url, DURATION_S)
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  const used = t.pid ? (cpuTicks(t.pid) - ticks) / CLK_TCK : NaN
  const decisions = t.redis ? (await redisCalls(t.redis)) - calls : 0
  return {
    ...r,
    cpu: used / seconds,
    rss: t.pid ? rssBytes(t.pid) : NaN,
    redisPerRequest: t.redis ? decisions / Math.max(1, r.requests) : undefined,
    saturatedUsPerRequest: used * 1e6 / Math.max(1, r.requests),
    ...(t.redisPid && decisions > 0 ? { redisUsPerDecision: (cpuTicks(t.redisPid) - redisTicks) / CLK_TCK * 1e6 / decisions } : {})
  }
}

/**
 * `run` with the process `pid` resumed (SIGCONT) after `warm` (load not counted), then
 * stopped again (SIGSTOP). Benchmarks that compare several servers keep all but the one
 * measured stopped: even idle ones wake up (timers, the event loop monitor, a collection
 * of the last run's garbage) and were measured to slow the one under test by up to a fifth.
 */
export async function alone<T> (pid: number, warm: () => unknown, run: () => Promise<T>): Promise<T> {
  process.kill(pid, 'SIGCONT')
  try {
    await warm()
    return await run()
  } finally {
    process.kill(pid, 'SIGSTOP')
  }
}

/** Ends a target's process (stopped or not: SIGCONT first) and waits for it to be gone. */
export async function end (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const gone = once(child, 'exit')
  child.kill('SIGCONT')
  child.kill('SIGKILL')
  await gone
}

/** Stops everything started, then the process. */
export async function shutdown (): Promise<void> {
  for (const fn of cleanup) await fn()
  for (const child of children) if (child.exitCode === null) child.kill('SIGTERM')
  await new Promise(resolve => setTimeout(resolve, 300))
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
}

/** Starts redis-server on a free port (helper core) and a client counting its calls. */
export async function startRedis (): Promise<{ port: number, redis: Redis, pid: number }> {
  const port = await freePort()
  const child = start('helper', 'redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning'])
  const redis = new Redis({ port, host: '127.0.0.1', retryStrategy: (n: number) => (n > 50 ? null : 100) })
  redis.on('error', () => {})
  await redis.ping()
  cleanup.push(() => redis.disconnect())
  return { port, redis, pid: child.pid! }
}

/** Starts the gateway (dist/src/server.js, or another build's `server`) on the target core with this environment. */
export async function startGatewayProcess (upstream: string, env: Record<string, string>, nodeArgs: string[] = [], server = join(ROOT, 'dist', 'src', 'server.js')): Promise<{ url: string, pid: number, child: ChildProcess, adminUrl: string }> {
  const port = await freePort()
  const adminPort = await freePort()
  const gw = start('target', process.execPath, [...nodeArgs, server], { UPSTREAM_URL: upstream, HOST: '127.0.0.1', PORT: String(port), ADMIN_PORT: String(adminPort), LOG_LEVEL: 'warn', ...env })
  await waitFor(adminPort, '/healthz')
  return { url: `http://127.0.0.1:${port}/ping`, pid: gw.pid!, child: gw, adminUrl: `http://127.0.0.1:${adminPort}` }
}

/** Runs a benchmark's main(), then stops everything it started, also when it fails. */
export function runBench (main: () => Promise<void>): void {
  main().then(shutdown, async (err: unknown) => {
    process.stderr.write(`bench failed: ${(err as Error).stack}\n`)
    await shutdown()
    process.exitCode = 1
  })
}

/** Starts bench/upstream.ts on a free port (helper core); resolves to its URL and port. */
export async function startUpstream (): Promise<{ url: string, port: number, child: ChildProcess }> {
  const port = await freePort()
  const child = start('helper', process.execPath, [join(HERE, 'upstream.js'), String(port)])
  await waitFor(port)
  return { url: `http://127.0.0.1:${port}`, port, child }
}

/** How the load is generated, for the reports. */
export const TOOL_LABEL = TOOL === 'wrk' ? `wrk -t1 -c${CONNECTIONS}` : `autocannon -c ${CONNECTIONS}`

/**
 * Warms every target up, then runs `rounds` rounds, each target in turn (interleaved, so
 * drift in the machine hits all alike). `each` may add to a sample and reports it.
 */
export async function interleave<T extends Target> (targets: T[], rounds: number, each: (t: T, s: Sample, round: number) => void): Promise<Map<string, Sample[]>> {
  for (const t of targets) load(t.url, WARMUP_S)
  const samples = new Map<string, Sample[]>(targets.map(t => [t.name, []]))
  for (let round = 1; round <= rounds; round++) {
    for (const t of targets) {
      const s = await measure(t)
      each(t, s, round)
      samples.get(t.name)!.push(s)
    }
  }
  return samples
}
