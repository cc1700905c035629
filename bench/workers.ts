/**
 * `npm run bench:workers` (Node >= 22.12): the gateway with WORKERS=2 against WORKERS=1,
 * and both against the Fastify floors, interleaved, CPU µs per request (the gateway
 * process's user+system time, every thread, over the requests it answered) beside req/s.
 * Two workers need both cores, so the WORKERS=2 runs and the WORKERS=1 runs they are compared
 * with are not pinned: they share the machine with wrk and the upstream alike. The
 * comparisons with the Fastify floors are per core, as bench/run.ts measures: the floors and
 * a WORKERS=1 gateway of each kind alone on core 0 (taskset), wrk and the upstream on
 * core 1. Every ratio is the median of the rounds' own ratios (paired), which the
 * machine's drift from round to round does not move; in each round the two sides of a
 * ratio run one right after the other, in turn first and second. Every round starts each
 * target afresh and ends it after: one process's JIT can settle in a state that costs it
 * 10-15% for its whole life (seen: seven gateways started alike, refusing alike, measured
 * 1.07-1.20x the same floor, each steady over 8 rounds; five floors, 0.98-1.03x; V8
 * inlines differently from process to process), so a ratio of long-lived processes
 * measures that luck. Targets:
 *   - the Fastify floors (bench/fastify-floor.ts): an onRequest hook and undici dispatch;
 *     a hook answering a fixed 429; the first, not pinned, in one process and in two on one
 *     port (reusePort): what two event loops cost here before they share anything, the
 *     reference for WORKERS=2 against 1;
 *   - the limit never reached, 100,000 clients in turn (keyed by a header wrk varies), so
 *     the workers rarely meet on one key;
 *   - every request on one key (one client): the contended case;
 *   - every request refused (1/h, burst 1).
 * With WORKERS=2, each worker's share of the requests comes from /admin/stats. Results go
 * to bench/RESULTS-workers.md, with what they suggest for 8 and 32 cores.
 */
import { writeFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { join } from 'node:path'
import { execFileSync, type ChildProcess } from 'node:child_process'
import {
  DURATION_S, HERE, ROOT, ROUNDS, TOOL, TOOL_LABEL, CLK_TCK,
  alone, cpuTicks, end, freePort, load, median, runBench, start, startUpstream, waitFor
} from './harness.js'
import { reusePortAvailable } from '../src/workers/runtime.js'
import { SharedZone } from '../src/store/shared/zone.js'

const TOKEN = 'bench-admin-token-0123456789'
const SPREAD_SCRIPT = join(HERE, '..', '..', 'bench', 'spread-clients.lua')

/** A target as the report names it, and how to start a process of it. */
interface Target {
  name: string
  label: string
  script?: string
  start: () => Promise<Running>
  /** Its worker threads or processes (1: a floor, or WORKERS=1): WARM_S each of load before it is measured. */
  threads?: number
}
interface Run { rps: number, usPerRequest: number, requests: number, non2xx: number, served?: number[] }
/** The measuring order in a round: the pairs whose ratio is reported, side by side. */
const GROUPS = [['floor', 'c1-one', 'c1-spread'], ['floor-429', 'c1-refused'], ['w1-spread', 'w2-spread'], ['floor-free', 'floor-pair'], ['w1-one', 'w2-one'], ['w1-refused', 'w2-refused']] as const

/** A running target: where to load it, its process, its admin listener (gateways). */
interface Running { url: string, child: ChildProcess, adminUrl?: string }

/** A process ended at shutdown: on core 0 (`target`), or on no particular core (`free`: two workers need both). */
function startOn (core: 'target' | 'free', args: string[], env: Record<string, string> = {}): ChildProcess {
  return start(core, process.execPath, args, env)
}

async function gateway (upstream: string, env: Record<string, string>, core: 'target' | 'free' = 'free'): Promise<Running> {
  const port = await freePort()
  const adminPort = await freePort()
  const child = startOn(core, [join(ROOT, 'dist', 'src', 'server.js')], { UPSTREAM_URL: upstream, HOST: '127.0.0.1', PORT: String(port), ADMIN_PORT: String(adminPort), ADMIN_TOKEN: TOKEN, LOG_LEVEL: 'warn', ...env })
  // Ready: every worker listening.
  await waitFor(adminPort, '/healthz')
  return { url: `http://127.0.0.1:${port}/ping`, child, adminUrl: `http://127.0.0.1:${adminPort}` }
}

/** The Fastify floor (bench/fastify-floor.ts) in `mode`: forwarding (none), `refuse`, or a `pair` of processes. */
async function floor (upstream: string, core: 'target' | 'free', mode?: 'refuse' | 'pair'): Promise<Running> {
  const port = await freePort()
  const child = startOn(core, [join(HERE, 'fastify-floor.js'), String(port), upstream, ...(mode === undefined ? [] : [mode])])
  await waitFor(port, '/ping')
  return { url: `http://127.0.0.1:${port}/ping`, child }
}

async function workerRequests (adminUrl: string): Promise<number[]> {
  const stats = await (await fetch(`${adminUrl}/admin/stats`, { headers: { authorization: `Bearer ${TOKEN}` } })).json() as { instance: { workers?: Array<{ requests: number }> } }
  return (stats.instance.workers ?? []).map(w => w.requests)
}

/**
 * Load not counted before each run, per worker thread: a new process's JIT warms up, each
 * isolate on its own share of the requests. Measured on fresh gateways, 2 s runs one after
 * the other: WORKERS=1 is steady from its second run, WORKERS=2 from its third (173, 87,
 * then 64-68 µs per request).
 */
const WARM_S = 3

/** One run of `t` (a process of it, `r`), the only target running (harness.ts alone()), after WARM_S of load not counted. */
async function measure (t: Target, r: Running): Promise<Run> {
  return await alone(r.child.pid!, () => load(r.url, WARM_S * (t.threads ?? 1), t.script), async () => await measureRunning(t, r))
}

async function measureRunning (t: Target, running: Running): Promise<Run> {
  const pid = running.child.pid!
  const workers = (t.threads ?? 1) > 1 ? running.adminUrl : undefined
  const before = workers === undefined ? [] : await workerRequests(workers)
  const ticks = cpuTicks(pid)
  const r = load(running.url, DURATION_S, t.script)
  const used = (cpuTicks(pid) - ticks) / CLK_TCK
  const after = workers === undefined ? [] : await workerRequests(workers)
  const served = after.map((n, i) => n - (before[i] ?? 0))
  return { rps: r.rps, usPerRequest: used * 1e6 / Math.max(1, r.requests), requests: r.requests, non2xx: r.non2xx, ...(served.length > 1 ? { served } : {}) }
}

async function main (): Promise<void> {
  if (!reusePortAvailable(process.version, process.platform)) throw new Error(`WORKERS > 1 needs Node >= 22.12 on Linux; this is ${process.version} (run it with Node 24)`)
  if (TOOL !== 'wrk') throw new Error('bench:workers needs wrk (its Lua script spreads the clients)')
  const upstream = await startUpstream()
  const targets: Target[] = []
  targets.push({ name: 'floor', label: 'Fastify floor: onRequest hook + undici dispatch (core 0)', start: async () => await floor(upstream.url, 'target') })
  targets.push({ name: 'floor-429', label: 'Fastify refusal floor: a hook writing a fixed 429 (core 0)', start: async () => await floor(upstream.url, 'target', 'refuse') })
  // What two event loops cost on this machine before they share anything: the forward
  // floor in one process and in two on one port (reusePort), not pinned, as WORKERS=1 and 2.
  // (The pair's second process is not stopped while others are measured: it has no timer.)
  targets.push({ name: 'floor-free', label: 'Fastify floor, one process', start: async () => await floor(upstream.url, 'free') })
  targets.push({ name: 'floor-pair', label: 'Fastify floor, two processes on one port (reusePort)', threads: 2, start: async () => await floor(upstream.url, 'free', 'pair') })
  const roomy = { RATE_LIMIT_RATE: '100000/s', RATE_LIMIT_BURST: '1000000000' }
  // Per core: WORKERS=1 alone on core 0, as the floors.
  for (const [name, label, env, script] of [
    ['c1-one', 'one client', roomy, undefined],
    ['c1-spread', '100,000 clients', { RATE_LIMIT_KEY_BY: 'header:x-client', ...roomy }, SPREAD_SCRIPT],
    ['c1-refused', 'every request refused', { RATE_LIMIT_RATE: '1/h', RATE_LIMIT_BURST: '1' }, undefined]
  ] as const) {
    targets.push({ name, label: `WORKERS=1 (core 0), ${label}${name === 'c1-refused' ? '' : ', limit never reached'}`, ...(script === undefined ? {} : { script }), start: async () => await gateway(upstream.url, { WORKERS: '1', ...env }, 'target') })
  }
  for (const workers of ['1', '2']) {
    const threads = Number(workers)
    targets.push({ name: `w${workers}-spread`, label: `WORKERS=${workers}, limit never reached, 100,000 clients`, script: SPREAD_SCRIPT, threads, start: async () => await gateway(upstream.url, { WORKERS: workers, RATE_LIMIT_KEY_BY: 'header:x-client', ...roomy }) })
    targets.push({ name: `w${workers}-one`, label: `WORKERS=${workers}, every request on one key`, threads, start: async () => await gateway(upstream.url, { WORKERS: workers, ...roomy }) })
    targets.push({ name: `w${workers}-refused`, label: `WORKERS=${workers}, every request refused`, threads, start: async () => await gateway(upstream.url, { WORKERS: workers, RATE_LIMIT_RATE: '1/h', RATE_LIMIT_BURST: '1' }) })
  }
  const runs = new Map<string, Run[]>(targets.map(t => [t.name, []]))
  const byName = new Map(targets.map(t => [t.name, t]))
  for (let round = 1; round <= ROUNDS; round++) {
    // Each compared pair measured one right after the other, first one then the other first
    // in turn: drift within a round (the machine's neighbours) falls on both alike. Each
    // target is a new process, started before its group and ended after it.
    for (const group of GROUPS) {
      const inOrder = (round % 2 === 1 ? group : [...group].reverse()).map(name => byName.get(name)!)
      const running: Running[] = []
      try {
        for (const t of inOrder) {
          const r = await t.start()
          running.push(r)
          process.kill(r.child.pid!, 'SIGSTOP')
        }
        for (const [i, t] of inOrder.entries()) {
          const r = await measure(t, running[i]!)
          runs.get(t.name)!.push(r)
          process.stdout.write(`round ${round} ${t.name.padEnd(12)} ${r.rps.toFixed(0).padStart(7)} req/s ${r.usPerRequest.toFixed(1).padStart(6)} µs/request${r.served ? `  served ${r.served.join('/')}` : ''}\n`)
        }
      } finally {
        for (const r of running) await end(r.child)
      }
    }
  }
  const us = (name: string): number => median(runs.get(name)!.map(r => r.usPerRequest))
  const rps = (name: string): number => median(runs.get(name)!.map(r => r.rps))
  // Each worker's share of every request it answered over all rounds.
  const shares = (name: string): string => {
    const all = runs.get(name)!.filter(r => r.served !== undefined)
    if (all.length === 0) return '—'
    const per = all[0]!.served!.map((_, i) => all.reduce((sum, r) => sum + r.served![i]!, 0))
    const total = per.reduce((a, b) => a + b, 0)
    return per.map(n => `${(n / Math.max(1, total) * 100).toFixed(0)}%`).join(' / ')
  }
  const rows = targets.map(t => `| ${t.label} | ${us(t.name).toFixed(1)} | ${rps(t.name).toFixed(0)} | ${shares(t.name)} |`)
  // The median of the rounds' own ratios (a and b measured one right after the other in each).
  // Beside it, the middle half of the rounds' ratios: how far the machine's noise spreads them.
  // Each round's own ratio of a to b (measured one right after the other in it).
  const perRound = (a: string, b: string): number[] => runs.get(a)!.map((r, i) => r.usPerRequest / runs.get(b)![i]!.usPerRequest)
  const paired = (a: string, b: string): string => {
    const ratios = perRound(a, b).sort((x, y) => x - y)
    const q = (f: number): string => ratios[Math.round(f * (ratios.length - 1))]!.toFixed(2)
    return `${median(ratios).toFixed(2)}× | ${q(0.25)}–${q(0.75)}`
  }
  // WORKERS=2/1 over what two event loops cost anyway (the floor's two processes / one), per round.
  const twoLoops = perRound('floor-pair', 'floor-free')
  const beyondTwoLoops = median(perRound('w2-spread', 'w1-spread').map((ratio, i) => ratio / twoLoops[i]!))
  // The zone's cost per decision, one thread (bench/decide.ts): a bound on how long a
  // decision holds its bucket's lock.
  const decide = execFileSync(process.execPath, [join(HERE, 'decide.js'), '1000000'], { encoding: 'utf8' }).trim().split('\n').map(l => JSON.parse(l) as { algorithm: string, zoneOneClientNs: number })
  const holdNs = decide.find(d => d.algorithm === 'token-bucket')!.zoneOneClientNs
  const perCore = 1e6 / us('w2-spread')
  // The shared store at 1M clients: its bytes over the clients it still holds once a
  // million distinct ones have come (a full bucket gives up its least recently used).
  const zone = new SharedZone(1_000_000)
  for (let i = 0; i < 1_000_000; i++) zone.set(`default|ip:10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, 1, Infinity)
  const bytesPerClient = zone.buffer.byteLength / zone.size
  const estimate = (cores: number): string => {
    const rate = cores * perCore
    return `| ${cores} | ${(rate / 1000).toFixed(0)}k | ${(rate * holdNs / 1e9 * 100).toFixed(1)}% |`
  }

  const report = `# Benchmark results: every core (WORKERS)

Latest \`npm run bench:workers\` (bench/workers.ts): ${new Date().toISOString().slice(0, 10)}, ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown CPU'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}.
Load: \`${TOOL_LABEL}\` and the upstream on core 1, ${DURATION_S} s per run, ${ROUNDS} interleaved rounds, medians. The WORKERS=2 runs and
the WORKERS=1 runs beside them are not pinned (two workers need both cores); the floors and the per-core WORKERS=1
runs are alone on core 0. Every round starts each target afresh (one process's JIT can be 10-15% off for its whole life);
only the target measured runs (the others are stopped), after ${WARM_S} s of load per worker thread not counted.
Every ratio is the median of the rounds' own ratios; in each round its two sides ran one right after the other, in turn first.
CPU per request: the target process's user+system time (every thread) over the run / the requests answered.

| target | CPU µs / request | req/s | each worker's share |
|---|---:|---:|---|
${rows.join('\n')}

| ratio | measured | middle half of the rounds | target (issue 26) |
|---|---:|---:|---:|
| WORKERS=2 / WORKERS=1, limit never reached | ${paired('w2-spread', 'w1-spread')} | ≤ 1.10× |
| WORKERS=2 / WORKERS=1, every request on one key | ${paired('w2-one', 'w1-one')} | ≤ 1.25× |
| the Fastify floor, two processes (reusePort) / one: two event loops sharing nothing | ${paired('floor-pair', 'floor-free')} | (reference) |
| WORKERS=2 / WORKERS=1, limit never reached, over the floor's two / one (the rounds' own) | ${beyondTwoLoops.toFixed(2)}× | — | (reported) |
| per core: WORKERS=1, one client, limit never reached / the Fastify floor | ${paired('c1-one', 'floor')} | ≤ 1.10× |
| per core: WORKERS=1, refused / the Fastify refusal floor | ${paired('c1-refused', 'floor-429')} | ≤ 1.15× |
| per core: WORKERS=1, 100,000 clients, limit never reached / the Fastify floor | ${paired('c1-spread', 'floor')} | (reported) |
| req/s, WORKERS=2 / WORKERS=1, limit never reached | ${(rps('w2-spread') / rps('w1-spread')).toFixed(2)}× | — | (reported) |

Memory: the shared store for \`MEMORY_STORE_MAX_KEYS=1000000\` is ${(zone.buffer.byteLength / 2 ** 20).toFixed(1)} MiB; after a
million distinct clients it holds ${zone.size} of them (${(zone.size / 1e4).toFixed(1)}%; a full bucket of 16 gives up its least
recently used), ${bytesPerClient.toFixed(1)} bytes per tracked client (nginx's \`limit_req\` zone: 64 bytes per state).

On paper, for more cores: each core answers 1 / (CPU per request) requests a second
(${perCore.toFixed(0)} at the WORKERS=2 figure above, upstream and load generator not
counted), and the one lock a single hot key's decisions share is held at most
${holdNs.toFixed(0)} ns per decision (the shared zone's whole decision in one thread,
\`bench/decide.ts\`). If every request of N cores fell on that one key:

| cores | requests/s | that key's lock busy |
|---:|---:|---:|
${estimate(8)}
${estimate(32)}

Spread over many clients, decisions lock different buckets (16 records each, one lock
line each) and do not wait on each other; the shared cost left is the cache line of a
bucket moving between cores, counted in the measured figures above for 2.
`
  writeFileSync(join(ROOT, 'bench', 'RESULTS-workers.md'), report)
  process.stdout.write(report)
}

runBench(main)
