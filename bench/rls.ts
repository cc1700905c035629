/**
 * `npm run bench:rls`: the rate limit service (RLS_PORT) asked at a fixed rate, as Envoy
 * asks it, on the memory store and on Redis: latency percentiles of each answer (from the
 * question sent to the answer read, by a grpc-js client in this process, open loop: the
 * questions due every millisecond, whatever came back) against Envoy's default 20 ms
 * timeout, and the gateway's CPU per question, beside a floor: grpc-js answering OK
 * without deciding (bench/rls-floor.ts). Each question carries two descriptors (envoyproxy/ratelimit's
 * messaging example) over 10,000 phone numbers, none of them over its limit, so every
 * answer took the store. Results go to bench/RESULTS-rls.md.
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { cpus, tmpdir, totalmem } from 'node:os'
import { join } from 'node:path'
import { credentials, makeGenericClientConstructor, type ServiceError } from '@grpc/grpc-js'
import { rlsDefinition } from '../src/rls/index.js'
import type { RlsRequest, RlsResponse } from '../src/rls/service.js'
import { CLK_TCK, HERE, ROOT, cpuTicks, freePort, has, median, waitFor } from './harness.js'

const RATE = Number(process.env.BENCH_RLS_RATE ?? 2000)
const SECONDS = Number(process.env.BENCH_RLS_S ?? 10)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)
const TICK_MS = 1
const NUMBERS = 10_000

const CONFIG = `
domain: messaging
descriptors:
  - key: message_type
    value: marketing
    descriptors:
      - key: to_number
        rate_limit: {unit: day, requests_per_unit: 1000000}
  - key: to_number
    rate_limit: {unit: day, requests_per_unit: 1000000}
`

interface Client { ShouldRateLimit: (q: RlsRequest, cb: (err: ServiceError | null, res: RlsResponse) => void) => void, close: () => void }
interface Run { p50: number, p99: number, p999: number, max: number, answered: number, errors: number, over20ms: number, usPerQuestion: number }

/** The grpc-js floor (bench/rls-floor.ts). */
async function floor (): Promise<{ address: string, pid: number, stop: () => void }> {
  const port = await freePort()
  const child = spawn(process.execPath, [join(HERE, 'rls-floor.js'), String(port)], { stdio: ['ignore', 'pipe', 'inherit'] })
  process.on('exit', () => child.kill('SIGKILL'))
  await new Promise(resolve => child.stdout.once('data', resolve))
  return { address: `127.0.0.1:${port}`, pid: child.pid!, stop: () => child.kill('SIGTERM') }
}

async function gateway (env: Record<string, string>): Promise<{ address: string, pid: number, stop: () => void }> {
  const dir = mkdtempSync(join(tmpdir(), 'gw-bench-rls-'))
  writeFileSync(join(dir, 'messaging.yaml'), CONFIG)
  const rlsPort = await freePort()
  const adminPort = await freePort()
  const child = spawn(process.execPath, [join(ROOT, 'dist', 'src', 'server.js')], {
    env: { PATH: process.env.PATH ?? '', MODE: 'decision', RLS_PORT: String(rlsPort), RLS_CONFIG: dir, ADMIN_PORT: String(adminPort), LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'ignore', 'inherit']
  })
  process.on('exit', () => child.kill('SIGKILL'))
  await waitFor(adminPort, '/healthz')
  return { address: `127.0.0.1:${rlsPort}`, pid: child.pid!, stop: () => child.kill('SIGTERM') }
}

function question (i: number): RlsRequest {
  const to = String(2060000000 + (i % NUMBERS))
  return { domain: 'messaging', descriptors: [{ entries: [{ key: 'message_type', value: 'marketing' }, { key: 'to_number', value: to }] }, { entries: [{ key: 'to_number', value: to }] }] }
}

/** Asks at RATE/s for `seconds`, open loop; waits for the last answers (at most 2 s). */
async function measure (address: string, pid: number, seconds: number): Promise<Run> {
  const Ctor = makeGenericClientConstructor(rlsDefinition(), 'RateLimitService')
  const client = new Ctor(address, credentials.createInsecure()) as unknown as Client
  const latencies: number[] = []
  let errors = 0
  let sent = 0
  let i = Math.floor(Math.random() * NUMBERS)
  const ticks = seconds * 1000 / TICK_MS
  const cpuBefore = cpuTicks(pid)
  const started = performance.now()
  await new Promise<void>(resolve => {
    let tick = 0
    const timer = setInterval(() => {
      // Catch up on ticks the timer was late for, so the rate holds.
      const due = Math.min(ticks, Math.floor((performance.now() - started) / TICK_MS) + 1)
      for (; tick < due; tick++) {
        // RATE/s over ticks of TICK_MS: the questions due by the end of this tick.
        const upTo = Math.round((tick + 1) * RATE * TICK_MS / 1000)
        for (let k = Math.round(tick * RATE * TICK_MS / 1000); k < upTo; k++) {
          const at = performance.now()
          sent++
          client.ShouldRateLimit(question(i++), err => {
            if (err !== null) errors++
            else latencies.push(performance.now() - at)
          })
        }
      }
      if (tick >= ticks) {
        clearInterval(timer)
        resolve()
      }
    }, TICK_MS)
  })
  const deadline = performance.now() + 2000
  while (latencies.length + errors < sent && performance.now() < deadline) await new Promise(resolve => setTimeout(resolve, 20))
  const cpuUs = (cpuTicks(pid) - cpuBefore) / CLK_TCK * 1e6
  client.close()
  const sorted = latencies.sort((a, b) => a - b)
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN
  return { p50: at(0.5), p99: at(0.99), p999: at(0.999), max: sorted.at(-1) ?? NaN, answered: sorted.length, errors: errors + (sent - sorted.length - errors), over20ms: sorted.filter(ms => ms > 20).length, usPerQuestion: cpuUs / Math.max(1, sorted.length) }
}

async function main (): Promise<void> {
  const targets: Array<{ name: string, label: string, env?: Record<string, string>, redis?: () => void }> = [
    { name: 'floor', label: 'floor: grpc-js answering OK, deciding nothing' },
    { name: 'memory', label: 'memory store', env: {} }
  ]
  if (has('redis-server')) {
    const port = await freePort()
    const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
    process.on('exit', () => redis.kill('SIGKILL'))
    await new Promise(resolve => setTimeout(resolve, 300))
    targets.push({ name: 'redis', label: 'Redis (one server, on this machine)', env: { STORE: 'redis', REDIS_URL: `redis://127.0.0.1:${port}` }, redis: () => redis.kill('SIGTERM') })
  }
  const running = await Promise.all(targets.map(async t => ({ ...t, gw: t.env === undefined ? await floor() : await gateway(t.env) })))
  for (const t of running) await measure(t.gw.address, t.gw.pid, 1)
  const runs = new Map<string, Run[]>(running.map(t => [t.name, []]))
  for (let round = 1; round <= ROUNDS; round++) {
    for (const t of running) {
      const r = await measure(t.gw.address, t.gw.pid, SECONDS)
      runs.get(t.name)!.push(r)
      process.stdout.write(`round ${round} ${t.name.padEnd(7)} p50 ${r.p50.toFixed(2)} ms  p99 ${r.p99.toFixed(2)} ms  p99.9 ${r.p999.toFixed(2)} ms  max ${r.max.toFixed(1)} ms  >20ms ${r.over20ms}  errors ${r.errors}  ${r.usPerQuestion.toFixed(1)} µs CPU/question\n`)
    }
  }
  for (const t of running) { t.gw.stop(); t.redis?.() }
  const m = (name: string, f: (r: Run) => number): number => median(runs.get(name)!.map(f))
  const rows = running.map(t => `| ${t.label} | ${m(t.name, r => r.p50).toFixed(2)} | ${m(t.name, r => r.p99).toFixed(2)} | ${m(t.name, r => r.p999).toFixed(2)} | ${Math.max(...runs.get(t.name)!.map(r => r.max)).toFixed(1)} | ${runs.get(t.name)!.reduce((s, r) => s + r.over20ms, 0)} of ${runs.get(t.name)!.reduce((s, r) => s + r.answered, 0)} | ${runs.get(t.name)!.reduce((s, r) => s + r.errors, 0)} | ${m(t.name, r => r.usPerQuestion).toFixed(1)} |`)
  const report = `# Benchmark results: the rate limit service (RLS_PORT)

Latest \`npm run bench:rls\` (bench/rls.ts): ${new Date().toISOString().slice(0, 10)}, ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown CPU'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}.
Load: ${RATE} questions/s, open loop (the questions due every ${TICK_MS} ms), ${SECONDS} s per run, ${ROUNDS} interleaved rounds, medians
(max and counts over all rounds); each question two descriptors over ${NUMBERS.toLocaleString('en')} numbers
(envoyproxy/ratelimit's messaging example), every one decided by the store. Latency: from the question sent to the
answer read by a grpc-js client in the bench process (so it includes the client's own time); Envoy's default
timeout for the service is 20 ms. CPU per question: the server process's user+system time over the answers.
The floor is the same service definition in grpc-js answering OK without deciding: what any Node gRPC server pays.
Nothing pinned: the gateway, the client and Redis share the machine's cores.

| target | p50 ms | p99 ms | p99.9 ms | max ms | answers over 20 ms | errors | CPU µs / question |
|---|---:|---:|---:|---:|---:|---:|---:|
${rows.join('\n')}
`
  writeFileSync(join(HERE, '..', '..', 'bench', 'RESULTS-rls.md'), report)
  process.stdout.write('\n' + report)
  process.exit(0)
}

await main()
