/**
 * What OpenTelemetry tracing costs (`npm run bench:tracing`): CPU time per request of the
 * gateway (memory store, one client within its limit) with tracing off, on with every
 * request sampled, and on with 1 in 10 sampled, exporting to an OTLP/HTTP sink that keeps
 * nothing (bench/otlp-sink.ts, on the helper core); beside the ceiling and, with
 * BENCH_REDIS_URL=<a redis-server of the bench's own> runs every gateway on the Redis store.
 * BENCH_BASELINE=<another build's dist/src/server.js> (e.g. the commit before tracing,
 * built in a git worktree), the same gateway built without the feature: "tracing off costs
 * nothing measurable" is the off row against that one. Interleaved rounds, medians,
 * written to bench/RESULTS-tracing.md.
 */
import { writeFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { join } from 'node:path'
import {
  freePort, HERE, interleave, median, ROOT, ROUNDS, DURATION_S, runBench, start, startGatewayProcess, startUpstream, TOOL_LABEL, waitFor,
  type Sample, type Target
} from './harness.js'

const BASELINE = process.env.BENCH_BASELINE
/** BENCH_TARGETS=ceiling,baseline,off: only these (more rounds in the same time for a pair). */
const ONLY = process.env.BENCH_TARGETS?.split(',')

async function main (): Promise<void> {
  const { url: upstream } = await startUpstream()
  const sinkPort = await freePort()
  start('helper', process.execPath, [join(HERE, 'otlp-sink.js'), String(sinkPort)])
  await waitFor(sinkPort)
  const targets: Target[] = []
  const ceilingPort = await freePort()
  const ceiling = start('target', process.execPath, [join(HERE, 'dispatch-proxy.js'), String(ceilingPort), upstream])
  await waitFor(ceilingPort)
  targets.push({ name: 'ceiling', label: 'node:http + undici `Pool.dispatch` (the ceiling)', url: `http://127.0.0.1:${ceilingPort}/ping`, pid: ceiling.pid! })

  // BENCH_REDIS_URL: the same targets on the Redis store (an A/B of the Redis path).
  const redis = process.env.BENCH_REDIS_URL
  const allowed = { RATE_LIMIT_RATE: '100000/s', RATE_LIMIT_BURST: '1000000000', ...(redis === undefined ? {} : { STORE: 'redis', REDIS_URL: redis }) }
  const tracing = { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${sinkPort}` }
  const gateways: Array<[string, string, Record<string, string>, string | undefined]> = [
    ['off', 'gateway, tracing off', allowed, undefined],
    ['on', 'gateway, tracing on, every request sampled', { ...allowed, ...tracing, OTEL_TRACES_SAMPLER: 'always_on' }, undefined],
    ['ratio', 'gateway, tracing on, 1 in 10 sampled (`traceidratio` 0.1)', { ...allowed, ...tracing, OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.1' }, undefined]
  ]
  if (BASELINE !== undefined) gateways.unshift(['baseline', `gateway built without tracing (${BASELINE})`, allowed, BASELINE])
  for (const [name, label, env, server] of gateways) {
    if (ONLY !== undefined && !ONLY.includes(name)) continue
    const gw = await startGatewayProcess(upstream, env, [], server)
    targets.push({ name, label, url: gw.url, pid: gw.pid })
  }

  process.stdout.write(`load: ${TOOL_LABEL}, ${DURATION_S} s per run, ${ROUNDS} rounds, interleaved\n`)
  const samples = await interleave(targets, ROUNDS, (t, s, round) => {
    process.stdout.write(`round ${round} ${t.name.padEnd(9)} ${s.saturatedUsPerRequest.toFixed(1)} µs/request, ${Math.round(s.rps)} req/s\n`)
  })
  const med = (name: string, key: keyof Sample): number => median(samples.get(name)!.map(s => s[key] as number))
  const us = (name: string) => med(name, 'saturatedUsPerRequest')
  const all = (name: string) => samples.get(name)!.map(s => s.saturatedUsPerRequest.toFixed(1)).join(', ')
  const rows = targets.map(t => `| ${t.label} | ${us(t.name).toFixed(1)} | ${(us(t.name) / us('ceiling')).toFixed(2)} | ${all(t.name)} | ${Math.round(med(t.name, 'rps'))} | ${med(t.name, 'p99').toFixed(2)} |`)
  const report = `# Tracing's cost

${new Date().toISOString().slice(0, 10)}, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version};
load: ${TOOL_LABEL}, ${DURATION_S} s per run, ${ROUNDS} rounds interleaved; medians. One client within its
limit (${process.env.BENCH_REDIS_URL === undefined ? 'memory store' : 'Redis store'}); spans exported over OTLP/HTTP to a sink that answers 200 and keeps nothing.

| target | CPU µs/request | × ceiling | each round | req/s | p99 ms |
|---|---:|---:|---|---:|---:|
${rows.join('\n')}
`
  writeFileSync(join(ROOT, 'bench', 'RESULTS-tracing.md'), report)
  process.stdout.write(`\n${report}`)
}

runBench(main)
