/**
 * WORKERS > 1 as it runs: 2 and 4 worker threads on one port (reusePort), one memory store
 * in shared memory, one admin listener. A limit is exact across workers, every worker
 * serves, /metrics sums what the clients saw; SIGTERM drains every worker; a rules reload
 * and an admin change reach every worker; a worker that dies is replaced while the others
 * answer. Where reusePort is missing (Node < 22.12), the start stops naming WORKERS.
 */
import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import pino from 'pino'
import { EMPTY_DIR, freePort, SERVER, spawnGateway } from '../helpers/process.js'
import type { Teardown } from '../helpers/tap.js'
import { startUpstream } from '../helpers/upstream.js'
import { send, type Reply } from '../helpers/http.js'
import { SYNC_POLL_MS } from '../../src/control/sync.js'
import { eventually } from '../helpers/load.js'
import { reusePortAvailable } from '../../src/workers/runtime.js'
import { supervise } from '../../src/workers/supervisor.js'
import { createServer, type AddressInfo } from 'node:net'
import type { TestUpstream } from '../helpers/upstream.js'
import { startRedis } from '../helpers/redis.js'
import { loadConfig } from '../../src/config/index.js'

const REUSE_PORT = reusePortAvailable(process.version, process.platform)
// Its gateways start several worker threads each (tens of seconds in all on a loaded
// machine): tap's 120 s default for a file is too close (108 s seen in CI).
t.setTimeout(6 * 60_000)
const TOKEN = 'test-admin-token-0123456789'
const AUTH = { authorization: `Bearer ${TOKEN}` }
/** A new connection per request, so the kernel spreads them across the workers. */
const CLOSE = { connection: 'close' }

interface Share { worker: number, requests: number, connections: number }

async function stats (adminUrl: string): Promise<{ instance: { workers: Share[] }, requests: Record<string, number> }> {
  return JSON.parse((await send(`${adminUrl}/admin/stats`, { headers: AUTH })).body)
}

/** `total` requests of one client, `concurrency` at a time, each on a connection of its own. */
async function burst (url: string, total: number, concurrency: number): Promise<{ replies: Array<Reply | Error>, ms: number }> {
  const replies: Array<Reply | Error> = []
  let next = 0
  const started = performance.now()
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < total) {
      next++
      replies.push(await send(url, { headers: CLOSE }).catch((err: Error) => err))
    }
  }))
  return { replies, ms: performance.now() - started }
}

const statusOf = (r: Reply | Error): number => r instanceof Error ? 0 : r.status

// Each lane runs what its Node can: the refusal where reusePort is missing (Node 20), the
// spawned WORKERS processes where it is (Node 24); the in-process tests below run on both.
// (Not tap skips: CI counts a skip as a failure.)
const withoutReusePort = REUSE_PORT ? (_name: string, _fn: (t: Test) => Promise<void>) => {} : (name: string, fn: (t: Test) => Promise<void>) => { t.test(name, fn) }
const withReusePort = REUSE_PORT ? (name: string, fn: (t: Test) => Promise<void>) => { t.test(name, fn) } : (_name: string, _fn: (t: Test) => Promise<void>) => {}

withoutReusePort('WORKERS=2 without reusePort: the start stops, naming WORKERS', async t => {
  const child = spawn(process.execPath, [SERVER], { env: { PATH: process.env.PATH ?? '', UPSTREAM_URL: 'http://127.0.0.1:1', WORKERS: '2' }, stdio: ['ignore', 'pipe', 'pipe'], cwd: EMPTY_DIR })
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  const [code] = await once(child, 'exit') as [number | null]
  t.equal(code, 1)
  t.match(stderr, /^configuration error: WORKERS=2: .*needs Node >= 22\.12 on Linux; this is Node v\d+\.\d+\.\d+ on linux\. Set WORKERS=1/)
})


for (const workers of [2, 4]) {
  withReusePort(`WORKERS=${workers}: one client over many connections at 3× its rate is held to rate × t + burst; every worker serves; /metrics sums what the clients saw`, async t => {
    const upstream = await startUpstream(t)
    const gw = await spawnGateway(t, { UPSTREAM_URL: upstream.url, WORKERS: String(workers), ADMIN_TOKEN: TOKEN, RATE_LIMIT_RATE: '40/s', RATE_LIMIT_BURST: '20', LOG_LEVEL: 'warn' })
    t.equal((await stats(gw.adminUrl)).instance.workers.length, workers, `${workers} workers report`)
    const { replies, ms } = await burst(`${gw.url}/ping`, 360, 12)
    const admitted = replies.filter(r => statusOf(r) === 200).length
    const refused = replies.filter(r => statusOf(r) === 429).length
    t.equal(admitted + refused, 360, 'every request answered 200 or 429')
    const bound = Math.floor(40 * ms / 1000) + 20 + 1
    t.ok(admitted <= bound, `${admitted} admitted in ${ms.toFixed(0)} ms: at most ${bound} (40/s, burst 20)`)
    t.ok(admitted >= 20, 'the burst at least')
    t.ok(refused > 0, `${refused} refused: the client was over its rate`)
    const s = await stats(gw.adminUrl)
    t.ok(s.instance.workers.every(w => w.requests > 0), `every worker served: ${s.instance.workers.map(w => `#${w.worker} ${w.requests}`).join(', ')}`)
    t.equal(s.requests.allowed, admitted, '/admin/stats: admitted as the clients saw')
    t.equal(s.requests.limited, refused, '/admin/stats: refused as the clients saw')
    const metrics = (await send(`${gw.adminUrl}/metrics`, { headers: AUTH })).body
    t.match(metrics, new RegExp(`^gateway_requests_total\\{outcome="allowed"\\} ${admitted}$`, 'm'), '/metrics: the workers summed')
    t.match(metrics, new RegExp(`^gateway_requests_total\\{outcome="limited"\\} ${refused}$`, 'm'))
    t.notMatch(metrics, /worker=/, 'no worker label')
    t.match(metrics, /^process_cpu_seconds_total \d/m, 'the process\'s own metrics, once')
    t.equal(upstream.hits.get('/ping'), admitted, 'only the admitted reached the upstream')
  })
}

withReusePort('WORKERS=2: SIGTERM drains the requests in flight on every worker, then exits 0', async t => {
  const upstream = await startUpstream(t)
  const gw = await spawnGateway(t, { UPSTREAM_URL: upstream.url, WORKERS: '2', ADMIN_TOKEN: TOKEN, LOG_LEVEL: 'warn' })
  // Slow requests, each on its own connection, until both workers hold some.
  const slow: Array<Promise<Reply | Error>> = []
  const holding = async (): Promise<boolean> => (await stats(gw.adminUrl)).instance.workers.every(w => w.connections > 0)
  for (let i = 0; i < 40 && !(await holding()); i++) {
    slow.push(send(`${gw.url}/slow?ms=1500`, { headers: CLOSE }).catch((err: Error) => err))
    await eventually(() => upstream.hits.get('/slow') === slow.length, 5000)
  }
  t.ok(await holding(), `both workers hold a request in flight (${slow.length} sent)`)
  gw.child.kill('SIGTERM')
  const answers = await Promise.all(slow)
  t.same(answers.map(statusOf), slow.map(() => 200), 'every request in flight got its answer')
  const [code] = await gw.exited
  t.equal(code, 0)
})

withReusePort('WORKERS=2: a rules reload (SIGHUP) and admin changes reach every worker', async t => {
  const upstream = await startUpstream(t)
  const rules = join(EMPTY_DIR, `workers-rules-${process.pid}.json`)
  writeFileSync(rules, JSON.stringify({ rules: [{ name: 'x', path: '/x', rate: '1000/s', burst: 1000, exclusive: true }] }))
  t.teardown(() => writeFileSync(rules, '{"rules":[]}'))
  const gw = await spawnGateway(t, { UPSTREAM_URL: upstream.url, WORKERS: '2', ADMIN_TOKEN: TOKEN, RATE_LIMIT_RULES_FILE: rules, RATE_LIMIT_RULES_POLL_MS: '0', LOG_LEVEL: 'warn' })
  const before = await stats(gw.adminUrl)

  writeFileSync(rules, JSON.stringify({ rules: [{ name: 'x', path: '/x', rate: '1/h', burst: 3, exclusive: true }] }))
  gw.child.kill('SIGHUP')
  // Every worker holds the new rule: 3 admitted in all, whichever worker answers.
  t.ok(await eventually(async () => (await send(`${gw.url}/x`, { headers: CLOSE })).status === 429, 5000), 'the new rule refuses')
  const { replies } = await burst(`${gw.url}/x`, 40, 8)
  t.same(replies.map(statusOf).filter(s => s !== 429), [], 'no worker admits past the new rule')

  // An admin change of the default limit: every worker applies it.
  const patched = await send(`${gw.adminUrl}/admin/config`, { method: 'PATCH', headers: { ...AUTH, 'content-type': 'application/json' }, body: JSON.stringify({ limit: { rate: '1/h', burst: 5 } }) })
  t.equal(patched.status, 200)
  const ping = await burst(`${gw.url}/ping`, 40, 8)
  t.equal(ping.replies.filter(r => statusOf(r) === 200).length, 5, 'exactly the new burst of 5, across the workers')

  // A ban from the one admin listener: refused on every worker.
  t.equal((await send(`${gw.adminUrl}/admin/clients/ban?ip=127.0.0.1`, { method: 'PUT', headers: { ...AUTH, 'content-type': 'application/json' }, body: '{"duration":"1m"}' })).status, 204)
  const banned = await burst(`${gw.url}/ping`, 20, 8)
  t.same([...new Set(banned.replies.map(statusOf))], [403], 'banned on every worker')
  const after = await stats(gw.adminUrl)
  t.ok(after.instance.workers.every((w, i) => w.requests > (before.instance.workers[i]?.requests ?? 0)), 'both workers answered')
})

/**
 * The supervisor in this process, on any Node: with PORT=0 each worker listens on a port
 * of its own (no reusePort needed), so a test can ask each one in turn.
 */
async function inProcess (t: Teardown, extra: Record<string, string> = {}): Promise<{ running: Awaited<ReturnType<typeof supervise>>, adminUrl: string, urls: string[], upstream: TestUpstream }> {
  const upstream = await startUpstream(t)
  const adminPort = await freePort()
  const env = { UPSTREAM_URL: upstream.url, HOST: '127.0.0.1', PORT: '0', ADMIN_PORT: String(adminPort), ADMIN_TOKEN: TOKEN, WORKERS: '2', LOG_LEVEL: 'silent', ...extra }
  const running = await supervise(loadConfig(env), env, 2, pino({ level: 'silent' }))
  t.teardown(() => running.shutdown('test'))
  const urls = [...running.pool.ports().values()].map(p => `http://127.0.0.1:${p}`)
  return { running, adminUrl: `http://127.0.0.1:${adminPort}`, urls, upstream }
}

t.test('two workers (in process, a port each) share one limit exactly; the admin listener sums their metrics and merges their offenders', async t => {
  const { running, adminUrl, urls } = await inProcess(t, { RATE_LIMIT_RATE: '1/h', RATE_LIMIT_BURST: '6' })
  t.equal(new Set(urls).size, 2, 'two workers, two ports')
  const seen: number[] = []
  for (let i = 0; i < 20; i++) seen.push((await send(`${urls[i % 2]!}/ping`)).status)
  t.same(seen.filter(s => s === 200).length, 6, 'the burst of 6, across both workers, exactly')
  t.same(seen.slice(6), Array(14).fill(429))
  t.equal((await send(`${adminUrl}/readyz`)).status, 200, 'ready: every worker is')
  const s = await stats(adminUrl)
  t.same(s.instance.workers.map(w => [w.worker, w.requests]), [[1, 10], [2, 10]], 'each worker\'s share')
  t.equal(s.requests.allowed, 6)
  t.equal(s.requests.limited, 14)
  const offenders = JSON.parse((await send(`${adminUrl}/admin/offenders?limit=5&minutes=1`, { headers: AUTH })).body)
  t.same(offenders.offenders, [{ client: 'ip:127.0.0.1', count: 14, error: 0 }], 'one client\'s refusals on both workers, merged')
  const metrics = (await send(`${adminUrl}/metrics`, { headers: AUTH })).body
  t.match(metrics, /^gateway_requests_total\{outcome="limited"\} 14$/m)
  t.match(metrics, /^gateway_tracked_clients 1$/m, 'the shared store\'s size, once (not summed)')
  t.match(metrics, /^gateway_limit_factor\{source="emergency"\} 1$/m, 'a factor, not a sum of factors')
  t.equal(running.pool.size, 2)
})

t.test('settings, bans, resets and rules reloads from the one admin listener reach both workers', async t => {
  const rules = join(EMPTY_DIR, `workers-in-process-${process.pid}.json`)
  writeFileSync(rules, JSON.stringify({ rules: [{ name: 'x', path: '/x', rate: '1000/s', burst: 1000, exclusive: true }] }))
  const { running, adminUrl, urls } = await inProcess(t, { RATE_LIMIT_RULES_FILE: rules, RATE_LIMIT_RULES_POLL_MS: '0' })
  const both = async (path: string): Promise<number[]> => [(await send(`${urls[0]!}${path}`)).status, (await send(`${urls[1]!}${path}`)).status]
  const json = { ...AUTH, 'content-type': 'application/json' }

  t.equal((await send(`${adminUrl}/admin/config`, { method: 'PATCH', headers: json, body: JSON.stringify({ limit: { rate: '1/h', burst: 3 } }) })).status, 200)
  t.ok(await eventually(async () => (await both('/ping')).includes(429), 5000), 'the new limit is in force')
  t.same(await both('/ping'), [429, 429], 'on both workers')
  t.equal((await send(`${adminUrl}/admin/clients/limits?ip=127.0.0.1`, { method: 'DELETE', headers: AUTH })).status, 204)
  t.same([...await both('/ping'), ...await both('/ping')], [200, 200, 200, 429], 'a reset gives the burst back once, for both')
  t.equal((await send(`${adminUrl}/admin/clients/ban?ip=127.0.0.1`, { method: 'PUT', headers: json, body: '{"duration":"1m"}' })).status, 204)
  t.same(await both('/x'), [403, 403], 'banned on both')
  t.equal((await send(`${adminUrl}/admin/clients/ban?ip=127.0.0.1`, { method: 'DELETE', headers: AUTH })).status, 204)

  writeFileSync(rules, JSON.stringify({ rules: [{ name: 'x', path: '/x', rate: '1/h', burst: 1, exclusive: true }] }))
  const reloaded = await send(`${adminUrl}/admin/rules/reload`, { method: 'POST', headers: AUTH })
  t.equal(reloaded.status, 200)
  t.ok(await eventually(async () => (await both('/x')).every(s => s === 429), 5000), 'the reloaded rule holds on both workers')
  // What SIGHUP does (server.ts wires it): the main thread and every worker read the file again.
  writeFileSync(rules, JSON.stringify({ rules: [{ name: 'x2', path: '/x', rate: '1000/s', burst: 1000, exclusive: true }] }))
  running.reloadRules()
  // Admitted: forwarded (the test upstream answers 404 for /x).
  t.ok(await eventually(async () => (await both('/x')).every(s => s === 404), 5000), 'a rule renamed and raised: both workers admit again')
})

t.test('a worker that dies is replaced (again and again, waiting longer); the other answers throughout; the limit holds', async t => {
  const { running, adminUrl, urls } = await inProcess(t, { RATE_LIMIT_RATE: '1/h', RATE_LIMIT_BURST: '4' })
  t.same([(await send(`${urls[0]!}/ping`)).status, (await send(`${urls[1]!}/ping`)).status], [200, 200])
  // Past QUICK_MS after its start: replaced at once.
  await new Promise(resolve => setTimeout(resolve, 1100))
  const first = running.pool.threads().get(1)!
  const asked = running.pool.report(1, 10)
  await first.terminate()
  const report = await asked
  t.ok(report.workers.length >= 1, `the report answered with ${report.workers.length} worker(s) (one may have died mid-question)`)
  t.equal((await send(`${urls[1]!}/ping`)).status, 200, 'the other answers meanwhile')
  t.ok(await eventually(async () => running.pool.size === 2 && running.pool.threads().get(1) !== first && (await send(`${adminUrl}/readyz`)).status === 200, 10_000), 'replaced, and ready again')
  // Dying again at once, before it is even ready: replaced after a wait.
  const second = running.pool.threads().get(1)!
  await second.terminate()
  t.ok(await eventually(() => running.pool.threads().get(1) !== undefined && running.pool.threads().get(1) !== second, 10_000), 'a third is on its way')
  const third = running.pool.threads().get(1)!
  await third.terminate()
  t.ok(await eventually(() => ![second, third].includes(running.pool.threads().get(1)!) && running.pool.ready(), 10_000), 'replaced again, and ready')
  const port = running.pool.ports().get(1)!
  const answers = [(await send(`http://127.0.0.1:${port}/ping`)).status, (await send(`${urls[1]!}/ping`)).status]
  t.same(answers, [200, 429], 'the replacement shares the limit: 4 in all, then refused')
})

t.test('shutdown drains every worker: requests in flight on both finish; one stuck past SHUTDOWN_TIMEOUT_MS is cut', async t => {
  const { running, urls } = await inProcess(t, { SHUTDOWN_TIMEOUT_MS: '300' })
  const slow = urls.map(u => send(`${u}/slow?ms=500`).catch((err: Error) => err))
  const stuck = send(`${urls[0]!}/slow?ms=20000`).catch((err: Error) => err)
  await new Promise(resolve => setTimeout(resolve, 200))
  const started = Date.now()
  await running.shutdown('SIGTERM')
  t.same((await Promise.all(slow)).map(statusOf), [200, 200], 'both workers\' requests in flight finished')
  t.ok((await stuck) instanceof Error, 'the stuck one was cut')
  t.ok(Date.now() - started < 5000, `drained in ${Date.now() - started} ms`)
  t.equal(running.pool.size, 0)
})

t.test('the usage ledger is one across workers: a key\'s usage, the heaviest keys and the quota endpoint count every worker\'s requests', async t => {
  const { adminUrl, urls } = await inProcess(t, { API_KEYS: 'k-one,k-two', USAGE_LEDGER: 'true', QUOTA_PATH: '/_quota', RATE_LIMIT_RATE: '1/h', RATE_LIMIT_BURST: '5' })
  const statuses: number[] = []
  for (let i = 0; i < 8; i++) statuses.push((await send(`${urls[i % 2]!}/ping`, { headers: { 'x-api-key': 'k-one' } })).status)
  for (let i = 0; i < 2; i++) await send(`${urls[i % 2]!}/ping`, { headers: { 'x-api-key': 'k-two' } })
  t.same(statuses, [200, 200, 200, 200, 200, 429, 429, 429])
  const usage = JSON.parse((await send(`${adminUrl}/admin/usage?apiKey=k-one`, { headers: AUTH })).body)
  t.same(usage.total, { admitted: 5, refused: 3, cost: 5 }, 'one key\'s day, both workers\' requests')
  const top = JSON.parse((await send(`${adminUrl}/admin/usage/top`, { headers: AUTH })).body)
  t.same(top.clients.map((c: { admitted: number, refused: number }) => [c.admitted, c.refused]), [[5, 3], [2, 0]], 'the heaviest keys, each counted once')
  const own = JSON.parse((await send(`${urls[1]!}/_quota`, { headers: { 'x-api-key': 'k-one' } })).body)
  t.match(own.usage, { admitted: 5, refused: 3, cost: 5 }, 'the quota endpoint of one worker counts what the other admitted and refused too')
  t.match(own.limits, [{ name: 'default', remaining: 0 }], 'and the shared limit')
})

t.test('STORE=redis with two workers: each its own connection, one limit through Redis; the admin listener\'s settings reach both', async t => {
  const redis = await startRedis(t)
  const { adminUrl, urls } = await inProcess(t, { STORE: 'redis', REDIS_URL: redis.url, RATE_LIMIT_RATE: '1/h', RATE_LIMIT_BURST: '3' })
  const seen: number[] = []
  for (let i = 0; i < 6; i++) seen.push((await send(`${urls[i % 2]!}/ping`)).status)
  t.same(seen, [200, 200, 200, 429, 429, 429], 'three in all, through Redis')
  const json = { ...AUTH, 'content-type': 'application/json' }
  t.equal((await send(`${adminUrl}/admin/clients/limits?ip=127.0.0.1`, { method: 'DELETE', headers: AUTH })).status, 204)
  // Each worker drops its cached denial when the reset's announcement reaches it (a message
  // away), or at its next settings check (every SYNC_POLL_MS) should it have missed it.
  const reach = SYNC_POLL_MS + 5000
  t.ok(await eventually(async () => (await send(`${urls[1]!}/ping`)).status === 200, reach), 'a reset in Redis, seen by one worker')
  t.ok(await eventually(async () => (await send(`${urls[0]!}/ping`)).status === 200, reach), 'and by the other')
  t.equal((await send(`${adminUrl}/admin/config`, { method: 'PATCH', headers: json, body: JSON.stringify({ dryRun: true }) })).status, 200)
  t.ok(await eventually(async () => (await send(`${urls[0]!}/ping`)).status === 200 && (await send(`${urls[1]!}/ping`)).status === 200 && (await send(`${urls[1]!}/ping`)).status === 200, 5000), 'dry run, through the fleet\'s channel, on both')
})

t.test('MODE=decision with two workers: each answers on its decision listener, against one limit', async t => {
  const { urls } = await inProcess(t, { MODE: 'decision', DECISION_PORT: '0', RATE_LIMIT_RATE: '1/h', RATE_LIMIT_BURST: '3' })
  const answers: number[] = []
  for (let i = 0; i < 6; i++) answers.push((await send(`${urls[i % 2]!}/`)).status)
  t.same(answers, [200, 200, 200, 429, 429, 429], 'three in all, whichever worker is asked')
})

t.test('a worker that cannot listen stops the start with its reason, naming the variables', async t => {
  const held = createServer().listen(0, '127.0.0.1')
  await once(held, 'listening')
  t.teardown(() => held.close())
  const upstream = await startUpstream(t)
  const env = { UPSTREAM_URL: upstream.url, HOST: '127.0.0.1', PORT: String((held.address() as AddressInfo).port), ADMIN_PORT: String(await freePort()), WORKERS: '2', LOG_LEVEL: 'silent' }
  await t.rejects(supervise(loadConfig(env), env, 2, pino({ level: 'silent' })), /HOST\/PORT: cannot listen on 127\.0\.0\.1:\d+: .*EADDRINUSE/)
})
