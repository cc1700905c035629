/**
 * `npm run bench:identity`: what naming the client costs per request, interleaved, CPU µs
 * per request (the gateway's user+system time over the requests answered) beside req/s:
 * the client's address alone; an API key of API_KEYS; a key made through the admin API
 * (looked up by its SHA-256); a bearer JWT, HS256 and RS256, its verdict cached after the
 * first request (every request here carries the same token, as one client's would). The
 * limit is never reached. Needs wrk (its Lua scripts set the headers). Results go to
 * bench/RESULTS-identity.md.
 */
import { mkdtempSync, writeFileSync } from 'node:fs'
import { cpus, tmpdir, totalmem } from 'node:os'
import { join } from 'node:path'
import { generateKeyPairSync } from 'node:crypto'
import { SignJWT, importPKCS8 } from 'jose'
import { CLK_TCK, DURATION_S, HERE, ROUNDS, TOOL, TOOL_LABEL, cpuTicks, load, median, runBench, startGatewayProcess, startUpstream } from './harness.js'

const TOKEN = 'bench-identity-admin-token-0123456789'
const SECRET = 'bench-identity-hmac-secret-of-32-bytes-or-more'

interface Target { name: string, label: string, url: string, pid: number, script: string }

/** A wrk script sending these headers with every request. */
function headerScript (dir: string, name: string, headers: Record<string, string>): string {
  const file = join(dir, `${name}.lua`)
  writeFileSync(file, Object.entries(headers).map(([k, v]) => `wrk.headers["${k}"] = "${v}"`).join('\n') + '\n')
  return file
}

async function main (): Promise<void> {
  if (TOOL !== 'wrk') throw new Error('bench:identity needs wrk (its Lua scripts set the headers)')
  const dir = mkdtempSync(join(tmpdir(), 'gw-bench-identity-'))
  const { url: upstream } = await startUpstream()
  const allowed = { RATE_LIMIT_RATE: '100000/s', RATE_LIMIT_BURST: '1000000000' }
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString()
  const hs = await new SignJWT({ sub: 'bench-user' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('2h').sign(new TextEncoder().encode(SECRET))
  const rs = await new SignJWT({ sub: 'bench-user' }).setProtectedHeader({ alg: 'RS256' }).setExpirationTime('2h').sign(await importPKCS8(privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), 'RS256'))

  const targets: Target[] = []
  const add = async (name: string, label: string, env: Record<string, string>, headers: Record<string, string>): Promise<{ adminUrl: string }> => {
    const gw = await startGatewayProcess(upstream, { ...allowed, ADMIN_TOKEN: TOKEN, ...env })
    targets.push({ name, label, url: gw.url, pid: gw.pid, script: headerScript(dir, name, headers) })
    return { adminUrl: gw.adminUrl }
  }
  await add('ip', 'the address (RATE_LIMIT_KEY_BY=ip)', { RATE_LIMIT_KEY_BY: 'ip' }, {})
  await add('api-key', 'an API key of API_KEYS', { API_KEYS: 'bench-key-1' }, { 'x-api-key': 'bench-key-1' })
  const managed = await add('managed-key', 'a key made through the admin API', {}, {})
  const made = await (await fetch(`${managed.adminUrl}/admin/keys`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: '{"name":"bench"}' })).json() as { key: string }
  targets.at(-1)!.script = headerScript(dir, 'managed-key', { 'x-api-key': made.key })
  await add('jwt-hs256', 'a bearer JWT, HS256 (JWT_SECRET), verdict cached', { RATE_LIMIT_KEY_BY: 'jwt:sub,ip', JWT_SECRET: SECRET }, { authorization: `Bearer ${hs}` })
  await add('jwt-rs256', 'a bearer JWT, RS256 (JWT_PUBLIC_KEY), verdict cached', { RATE_LIMIT_KEY_BY: 'jwt:sub,ip', JWT_PUBLIC_KEY: pem }, { authorization: `Bearer ${rs}` })

  for (const t of targets) load(t.url, 1, t.script)
  const runs = new Map<string, Array<{ us: number, rps: number }>>(targets.map(t => [t.name, []]))
  for (let round = 1; round <= ROUNDS; round++) {
    for (const t of targets) {
      const ticks = cpuTicks(t.pid)
      const r = load(t.url, DURATION_S, t.script)
      const us = (cpuTicks(t.pid) - ticks) / CLK_TCK * 1e6 / Math.max(1, r.requests)
      runs.get(t.name)!.push({ us, rps: r.rps })
      process.stdout.write(`round ${round} ${t.name.padEnd(12)} ${r.rps.toFixed(0).padStart(7)} req/s ${us.toFixed(1).padStart(6)} µs/request${r.non2xx > 0 ? `  non-2xx ${r.non2xx}` : ''}\n`)
    }
  }
  const us = (name: string): number => median(runs.get(name)!.map(r => r.us))
  const rows = targets.map(t => `| ${t.label} | ${us(t.name).toFixed(1)} | ${(us(t.name) / us('api-key')).toFixed(2)}× | ${median(runs.get(t.name)!.map(r => r.rps)).toFixed(0)} |`)
  const report = `# Benchmark results: naming the client

Latest \`npm run bench:identity\` (bench/identity.ts): ${new Date().toISOString().slice(0, 10)}, ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown CPU'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}.
Load: \`${TOOL_LABEL}\`, ${DURATION_S} s per run, ${ROUNDS} interleaved rounds, medians; the limit never reached; every
request of a target carries the same key or token (one client's traffic: a JWT's verdict is cached after its first request).
CPU per request: the gateway process's user+system time over the run / the requests answered.

| client named by | CPU µs / request | against an API key | req/s |
|---|---:|---:|---:|
${rows.join('\n')}
`
  writeFileSync(join(HERE, '..', '..', 'bench', 'RESULTS-identity.md'), report)
  process.stdout.write('\n' + report)
}

runBench(main)
