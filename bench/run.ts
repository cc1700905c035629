/**
 * `npm run bench`: the gateway against the speed limit of a Node proxy, side by side in one
 * run on one machine. Every target is started once; then ROUNDS rounds run each target in
 * turn (interleaved, so drift in the machine hits all alike) for DURATION_S under a load
 * generator in its own process; medians are reported, with the ratios the project targets,
 * and written to bench/RESULTS.md. Everything listens on 127.0.0.1 and stops by itself.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { cpus, tmpdir, totalmem } from 'node:os'
import { join } from 'node:path'
import {
  CLIENT_COUNTS, CLK_TCK, DURATION_S, HERE, LATENCY_RATE, LATENCY_S, LATENCY_TARGETS, PIN, ROOT, ROUNDS, TOOL_LABEL,
  cpuTicks, freePort, has, interleave, latencyAtFixedRate, median, runBench, start, startGatewayProcess, startRedis, startUpstream, waitFor,
  type Sample, type Target
} from './harness.js'

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
  const { url: upstream, port: upstreamPort } = await startUpstream()

  const { port: redisPort, redis } = await startRedis()

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
    const gw = await startGatewayProcess(upstream, env)
    targets.push({ name, label, ...gw, ...(usesRedis ? { redis } : {}) })
  }

  if (has('nginx')) {
    const dir = mkdtempSync(join(tmpdir(), 'gw-bench-nginx-'))
    const port = await freePort()
    const nginx = start('target', 'nginx', ['-c', nginxConfig(dir, port, upstreamPort), '-p', dir, '-g', 'daemon off;'])
    await waitFor(port)
    targets.push({ name: 'nginx', label: '(g) nginx 1 worker, limit_req', url: `http://127.0.0.1:${port}/ping`, pid: nginx.pid! })
  }

  process.stdout.write(`load: ${TOOL_LABEL}, ${DURATION_S} s per run, ${ROUNDS} rounds, interleaved\n`)
  const samples = await interleave(targets, ROUNDS, (t, s, round) => {
    if (LATENCY_TARGETS.includes(t.name)) {
      const ticks = cpuTicks(t.pid!)
      const l = latencyAtFixedRate(t.url)
      s.fixedP50 = l.p50
      s.fixedP99 = l.p99
      // The probe sends a warm-up second too: (LATENCY_S + 1) × LATENCY_RATE requests.
      s.cpuUsPerRequest = (cpuTicks(t.pid!) - ticks) / CLK_TCK * 1e6 / ((LATENCY_S + 1) * LATENCY_RATE)
    }
    process.stdout.write(`round ${round} ${t.name.padEnd(9)} ${s.rps.toFixed(0).padStart(7)} req/s  p50 ${s.p50.toFixed(2)} ms  p99 ${s.p99.toFixed(2)} ms${s.non2xx ? `  non-2xx ${s.non2xx}` : ''}${s.fixedP99 !== undefined ? `  at ${LATENCY_RATE}/s: p50 ${s.fixedP50!.toFixed(3)} p99 ${s.fixedP99.toFixed(3)} ms, CPU ${s.cpuUsPerRequest!.toFixed(0)} µs/request` : ''}\n`)
  })

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
Load: \`${TOOL_LABEL}\`, ${DURATION_S} s per run, ${ROUNDS} interleaved rounds, medians; one client (127.0.0.1), \`GET /ping\` answered by a minimal upstream.
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

runBench(main)
