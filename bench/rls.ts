/**
 * `npm run bench:rls`: the rate limit service (RLS_PORT) asked at a fixed rate, as Envoy
 * asks it, on the memory store and on Redis: latency percentiles of each answer (from the
 * question sent to the answer read, by an HTTP/2 client in this process, open loop: the
 * questions due every millisecond, whatever came back) against Envoy's default 20 ms
 * timeout, the gateway's own answer time (its histogram) and its CPU per question, beside
 * a floor: grpc-js answering OK without deciding (bench/rls-floor.ts). Each question
 * carries two descriptors (envoyproxy/ratelimit's messaging example) over 10,000 phone
 * numbers, none of them over its limit, so every answer took the store. BENCH_RLS_ONLY
 * (e.g. `redis`, or `floor,memory`) measures some targets only. Results go to
 * bench/RESULTS-rls.md.
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { cpus, tmpdir, totalmem } from 'node:os'
import { join } from 'node:path'
import { once } from 'node:events'
import { connect, type IncomingHttpHeaders } from 'node:http2'
import { rlsDefinition } from '../src/rls/index.js'
import type { RlsRequest, RlsResponse } from '../src/rls/service.js'
import { CLK_TCK, HERE, ROOT, alone, cpuTicks, freePort, has, median, waitFor } from './harness.js'

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

interface Run { p50: number, p99: number, p999: number, max: number, answered: number, errors: number, over20ms: number, usPerQuestion: number, clientUs: number, inside: number }

/** The grpc-js floor (bench/rls-floor.ts). */
interface Running { address: string, pid: number, stop: () => void, buckets?: () => Promise<Map<number, number>> }

async function floor (): Promise<Running> {
  const port = await freePort()
  const child = spawn(process.execPath, [join(HERE, 'rls-floor.js'), String(port)], { stdio: ['ignore', 'pipe', 'inherit'] })
  process.on('exit', () => child.kill('SIGKILL'))
  await new Promise(resolve => child.stdout.once('data', resolve))
  return { address: `127.0.0.1:${port}`, pid: child.pid!, stop: () => child.kill('SIGTERM') }
}

const TOKEN = 'bench-admin-token-0123456789'

async function gateway (env: Record<string, string>): Promise<Running> {
  const dir = mkdtempSync(join(tmpdir(), 'gw-bench-rls-'))
  writeFileSync(join(dir, 'messaging.yaml'), CONFIG)
  const rlsPort = await freePort()
  const adminPort = await freePort()
  const child = spawn(process.execPath, [join(ROOT, 'dist', 'src', 'server.js')], {
    env: { PATH: process.env.PATH ?? '', MODE: 'decision', RLS_PORT: String(rlsPort), RLS_CONFIG: dir, ADMIN_PORT: String(adminPort), ADMIN_TOKEN: TOKEN, LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'ignore', 'inherit']
  })
  process.on('exit', () => child.kill('SIGKILL'))
  await waitFor(adminPort, '/healthz')
  return { address: `127.0.0.1:${rlsPort}`, pid: child.pid!, stop: () => child.kill('SIGTERM'), buckets: async () => decisionBuckets(adminPort) }
}

/**
 * The gateway's own answer times so far (gateway_rls_decision_seconds, every code summed):
 * cumulative counts by upper bound in ms. From the question decoded to the answer made:
 * what the gateway adds, without the client, the transport or either side's scheduling.
 */
async function decisionBuckets (adminPort: number): Promise<Map<number, number>> {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text()
  const out = new Map<number, number>()
  for (const [, labels, n] of text.matchAll(/^gateway_rls_decision_seconds_bucket\{([^}]*)\} (\d+)$/gm)) {
    const le = /le="([^"]+)"/.exec(labels!)![1]!
    const ms = le === '+Inf' ? Infinity : Number(le) * 1000
    out.set(ms, (out.get(ms) ?? 0) + Number(n))
  }
  return out
}

/** The smallest bucket bound holding fraction `q` of the answers between two readings. */
function bucketQuantile (before: Map<number, number>, after: Map<number, number>, q: number): number {
  const bounds = [...after.keys()].sort((a, b) => a - b)
  const total = (after.get(Infinity) ?? 0) - (before.get(Infinity) ?? 0)
  return bounds.find(b => (after.get(b)! - (before.get(b) ?? 0)) >= q * total) ?? NaN
}

function question (i: number): RlsRequest {
  const to = String(2060000000 + (i % NUMBERS))
  return { domain: 'messaging', descriptors: [{ entries: [{ key: 'message_type', value: 'marketing' }, { key: 'to_number', value: to }] }, { entries: [{ key: 'to_number', value: to }] }] }
}

const PATH = '/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit'
const HEADERS = { ':method': 'POST', ':path': PATH, 'content-type': 'application/grpc', te: 'trailers' }

/**
 * The questions, framed as gRPC sends them (a 5-byte prefix: not compressed, length), made
 * once: the load generator must cost as little as it can, as Envoy's C++ client does. With
 * grpc-js as the client it cost 180-200 µs per question (twice the server's floor), and
 * the tail it measured was its own scheduling as much as the server's.
 */
function framed (): Buffer[] {
  const { requestSerialize } = rlsDefinition().ShouldRateLimit!
  return Array.from({ length: NUMBERS }, (_, i) => {
    const message = requestSerialize(question(i))
    const frame = Buffer.alloc(5 + message.length)
    frame.writeUInt32BE(message.length, 1)
    message.copy(frame, 5)
    return frame
  })
}

/**
 * Asks at RATE/s for `seconds`, open loop, over one HTTP/2 connection (node:http2, as one
 * Envoy worker holds one); waits for the last answers (at most 2 s). An answer counts when
 * its grpc-status is 0 and it says OK (every question is within its limits).
 */
async function measure ({ address, pid, buckets }: Running, seconds: number, frames: Buffer[]): Promise<Run> {
  const { responseDeserialize } = rlsDefinition().ShouldRateLimit!
  const session = connect(`http://${address}`)
  session.on('error', () => {})
  await once(session, 'connect')
  const latencies: number[] = []
  let errors = 0
  let sent = 0
  let i = Math.floor(Math.random() * NUMBERS)
  const ticks = seconds * 1000 / TICK_MS
  const ask = (): void => {
    const at = performance.now()
    const body: Buffer[] = []
    let status = ''
    const stream = session.request(HEADERS)
    stream.on('data', (chunk: Buffer) => body.push(chunk))
    stream.on('trailers', (trailers: IncomingHttpHeaders) => { status = String(trailers['grpc-status']) })
    stream.on('error', () => {})
    stream.on('close', () => {
      const message = Buffer.concat(body)
      if (status === '0' && message.length > 5 && (responseDeserialize(message.subarray(5)) as RlsResponse).overall_code === 'OK') latencies.push(performance.now() - at)
      else errors++
    })
    stream.end(frames[i++ % NUMBERS])
  }
  const bucketsBefore = await buckets?.()
  const cpuBefore = cpuTicks(pid)
  const clientBefore = process.cpuUsage()
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
          sent++
          ask()
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
  const client = process.cpuUsage(clientBefore)
  const inside = bucketsBefore === undefined ? NaN : bucketQuantile(bucketsBefore, await buckets!(), 0.99)
  session.close()
  const sorted = latencies.sort((a, b) => a - b)
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN
  return { p50: at(0.5), p99: at(0.99), p999: at(0.999), max: sorted.at(-1) ?? NaN, answered: sorted.length, errors: sent - sorted.length, over20ms: sorted.filter(ms => ms > 20).length, usPerQuestion: cpuUs / Math.max(1, sorted.length), clientUs: (client.user + client.system) / Math.max(1, sent), inside }
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
  const only = process.env.BENCH_RLS_ONLY?.split(',')
  const running = await Promise.all(targets.filter(t => only === undefined || only.includes(t.name)).map(async t => ({ ...t, gw: t.env === undefined ? await floor() : await gateway(t.env) })))
  const frames = framed()
  // Only the target measured runs (harness.ts alone()): the others are stopped meanwhile,
  // so no idle neighbour's collection of its last run's garbage lands in this one (measured:
  // Redis's p99 11-15 ms just after the memory store's run, 5-7 ms alone). Each resumes with
  // a second of questions not counted.
  for (const t of running) {
    await measure(t.gw, 1, frames)
    process.kill(t.gw.pid, 'SIGSTOP')
  }
  const runs = new Map<string, Run[]>(running.map(t => [t.name, []]))
  for (let round = 1; round <= ROUNDS; round++) {
    for (const t of running) {
      const r = await alone(t.gw.pid, async () => await measure(t.gw, 1, frames), async () => await measure(t.gw, SECONDS, frames))
      runs.get(t.name)!.push(r)
      process.stdout.write(`round ${round} ${t.name.padEnd(7)} p50 ${r.p50.toFixed(2)} ms  p99 ${r.p99.toFixed(2)} ms  p99.9 ${r.p999.toFixed(2)} ms  max ${r.max.toFixed(1)} ms  >20ms ${r.over20ms}  errors ${r.errors}  ${r.usPerQuestion.toFixed(1)} µs CPU/question  (client ${r.clientUs.toFixed(0)} µs)  inside p99 ≤ ${r.inside} ms\n`)
    }
  }
  for (const t of running) { process.kill(t.gw.pid, 'SIGCONT'); t.gw.stop(); t.redis?.() }
  const m = (name: string, f: (r: Run) => number): number => median(runs.get(name)!.map(f))
  const rows = running.map(t => {
    const all = runs.get(t.name)!
    const inside = m(t.name, r => r.inside)
    return `| ${t.label} | ${m(t.name, r => r.p50).toFixed(2)} | ${m(t.name, r => r.p99).toFixed(2)} | ${Number.isNaN(inside) ? '–' : `≤ ${inside}`} | ${m(t.name, r => r.p999).toFixed(2)} | ${Math.max(...all.map(r => r.max)).toFixed(1)} | ${all.reduce((s, r) => s + r.over20ms, 0)} of ${all.reduce((s, r) => s + r.answered, 0)} | ${all.reduce((s, r) => s + r.errors, 0)} | ${m(t.name, r => r.usPerQuestion).toFixed(1)} | ${m(t.name, r => r.clientUs).toFixed(0)} |`
  })
  const report = `# Benchmark results: the rate limit service (RLS_PORT)

Latest \`npm run bench:rls\` (bench/rls.ts): ${new Date().toISOString().slice(0, 10)}, ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown CPU'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}.
Load: ${RATE} questions/s, open loop (the questions due every ${TICK_MS} ms), ${SECONDS} s per run, ${ROUNDS} interleaved rounds, medians
(max and counts over all rounds); each question two descriptors over ${NUMBERS.toLocaleString('en')} numbers
(envoyproxy/ratelimit's messaging example), every one decided by the store. Latency: from the question sent to the
answer read, by a client in the bench process on one HTTP/2 connection (node:http2, the questions framed once
beforehand: with grpc-js as the client it cost 180-200 µs a question, twice the server's floor, and its own pauses
were much of the tail it measured); Envoy's default timeout for the service is 20 ms. In the gateway: the p99 of its
own answer time (gateway_rls_decision_seconds, a bucket bound: from the question decoded to the answer made), what
is left once the client, the transport and both sides' scheduling are taken out. CPU per question: the server
process's user+system time over the answers; the client's beside it. The floor is the same service definition in
grpc-js answering OK without deciding: what any Node gRPC server pays. Nothing pinned: the gateway, the client and
Redis share the machine's cores, so the tail (p99.9, max) is mostly theirs: the floor has it too. The targets not
being measured are stopped (SIGSTOP) meanwhile; each resumes with a second of questions not counted.

| target | p50 ms | p99 ms | in the gateway p99 ms | p99.9 ms | max ms | answers over 20 ms | errors | CPU µs / question | client CPU µs / question |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|
${rows.join('\n')}
`
  writeFileSync(join(HERE, '..', '..', 'bench', 'RESULTS-rls.md'), report)
  process.stdout.write('\n' + report)
  process.exit(0)
}

await main()
