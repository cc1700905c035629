/**
 * `npm run bench` (second part): the four algorithms side by side, each on the memory
 * store and on Redis, for a client within its limit (the decision plus the proxying) and,
 * on Redis, for a client far over it (the rejection path). Reports req/s and Redis round
 * trips per request, and writes bench/RESULTS-algorithms.md.
 */
import { execFileSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { join } from 'node:path'
import { DURATION_S, HERE, ROOT, TOOL_LABEL, interleave, median, runBench, startGatewayProcess, startRedis, startUpstream, type Sample, type Target } from './harness.js'
import { ALGORITHMS } from '../src/core/policy.js'

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)

async function main (): Promise<void> {
  const { url: upstream } = await startUpstream()
  const { port: redisPort, redis } = await startRedis()
  const onRedis = (prefix: string) => ({ STORE: 'redis', REDIS_URL: `redis://127.0.0.1:${redisPort}`, REDIS_KEY_PREFIX: prefix })

  const targets: Array<Target & { algorithm: string, store: string, path: string }> = []
  const off = await startGatewayProcess(upstream, { RATE_LIMIT_ENABLED: 'false' })
  targets.push({ name: 'off', label: 'limiting off', algorithm: '—', store: '—', path: 'allowed', ...off })
  for (const algorithm of ALGORITHMS) {
    // Within the limit: the fastest rate a limit may have, and a quota never reached
    // (the windows' quota is the rate's count: 100000 per second).
    const allowed = { RATE_LIMIT_ALGORITHM: algorithm, RATE_LIMIT_RATE: '100000/s', RATE_LIMIT_BURST: '1000000000', RATE_LIMIT_MAX_DELAY_MS: '0' }
    const over = { RATE_LIMIT_ALGORITHM: algorithm, RATE_LIMIT_RATE: '1/h', RATE_LIMIT_BURST: '1', RATE_LIMIT_MAX_DELAY_MS: '0' }
    for (const [store, path, env] of [
      ['memory', 'allowed', allowed],
      ['redis', 'allowed', { ...allowed, ...onRedis(`bench-${algorithm}-a:`) }],
      ['redis', 'refused', { ...over, ...onRedis(`bench-${algorithm}-r:`) }]
    ] as const) {
      const gw = await startGatewayProcess(upstream, env)
      targets.push({ name: `${algorithm}-${store}-${path}`, label: `${algorithm}, ${store}, ${path}`, algorithm, store, path, ...gw, ...(store === 'redis' ? { redis } : {}) })
    }
  }

  process.stdout.write(`algorithms: ${TOOL_LABEL}, ${DURATION_S} s per run, ${ROUNDS} rounds, interleaved\n`)
  const samples = await interleave(targets, ROUNDS, (t, s, round) => {
    process.stdout.write(`round ${round} ${t.name.padEnd(30)} ${s.rps.toFixed(0).padStart(7)} req/s  non-2xx ${s.non2xx}${s.redisPerRequest === undefined ? '' : `  Redis ${s.redisPerRequest.toFixed(3)}/request`}\n`)
  })
  const med = (name: string, key: keyof Sample): number => median(samples.get(name)!.map(s => s[key] as number))
  const offRps = med('off', 'rps')
  const rows = targets.map(t => {
    const rps = med(t.name, 'rps')
    const refusedShare = med(t.name, 'non2xx') / Math.max(1, med(t.name, 'requests'))
    const redisPer = t.redis ? med(t.name, 'redisPerRequest').toFixed(3) : '—'
    return `| ${t.algorithm} | ${t.store} | ${t.path} | ${rps.toFixed(0)} | ${(rps / offRps).toFixed(2)}× | ${(refusedShare * 100).toFixed(1)}% | ${med(t.name, 'p99').toFixed(2)} | ${redisPer} |`
  })
  // The decision alone, in process, without HTTP (bench/decide.ts).
  const decisions = execFileSync(process.execPath, [join(HERE, 'decide.js')], { encoding: 'utf8' }).trim().split('\n')
    .map(line => JSON.parse(line) as { algorithm: string, oneClientNs: number, manyClientsNs: number, zoneOneClientNs: number, zoneManyClientsNs: number })
  const us = (ns: number): string => (ns / 1000).toFixed(2)
  const decisionRows = decisions.map(d => `| ${d.algorithm} | ${us(d.oneClientNs)} | ${us(d.manyClientsNs)} | ${us(d.zoneOneClientNs)} | ${us(d.zoneManyClientsNs)} |`)

  const report = `# Benchmark results: the algorithms

Latest \`npm run bench\` (bench/algorithms.ts): ${new Date().toISOString().slice(0, 10)}, ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown CPU'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}.
Load: \`${TOOL_LABEL}\`, ${DURATION_S} s per run, ${ROUNDS} interleaved rounds, medians; one client, \`GET /ping\` answered by a minimal upstream; each gateway alone on core 0 where taskset is available.
"allowed": a limit the client never reaches (every request decided and proxied); "refused": a client far over its limit (1/h, burst 1: every request after the first answered 429 by the gateway).

| algorithm | store | client | req/s | vs limiting off | refused | p99 ms | Redis round trips/request |
|---|---|---|---:|---:|---:|---:|---:|
${rows.join('\n')}

Redis round trips are the script calls (EVALSHA) counted by Redis \`INFO commandstats\`
over the run, divided by the requests: one per decision for an allowed client, none for
a refused one (its denial is remembered locally until it would be admitted: the deny cache).
Single runs on this machine vary by ±20% between targets running the same code (the
token and leaky bucket share one function), so differences below that are noise.

The decision alone (memory store \`consume()\` in process, \`bench/decide.ts\`), µs per decision:

| algorithm | one busy client | 100,000 clients in turn | shared zone (WORKERS), one client | shared zone, 100,000 clients |
|---|---:|---:|---:|---:|
${decisionRows.join('\n')}

A proxied request costs the gateway ~${(1e6 / offRps).toFixed(0)} µs of its core (1 / the req/s with limiting off,
above), so the choice of algorithm changes the cost of a request by about 1% at most.
`
  writeFileSync(join(ROOT, 'bench', 'RESULTS-algorithms.md'), report)
  process.stdout.write('\n' + report)
}

runBench(main)
