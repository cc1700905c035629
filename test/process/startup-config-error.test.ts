import t from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { EMPTY_DIR, freePort, SERVER, spawnGateway } from '../helpers/process.js'
import { startUpstream } from '../helpers/upstream.js'
import { statuses } from '../helpers/http.js'
import { loadDotEnv } from '../../src/server.js'



async function run (env: Record<string, string>, cwd = EMPTY_DIR): Promise<{ code: number | null, stdout: string, stderr: string, lingeredMs: number }> {
  const child = spawn(process.execPath, [SERVER], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'], cwd })
  let stdout = ''
  let stderr = ''
  let saidAt = 0
  child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); saidAt ||= performance.now() })
  const [code] = await once(child, 'exit') as [number | null]
  return { code, stdout, stderr, lingeredMs: saidAt === 0 ? 0 : performance.now() - saidAt }
}

/** Listens on a free port ourselves: a child that tried to bind it would fail to listen. */
async function heldPort (t: { teardown (fn: () => unknown): void }): Promise<number> {
  const s = createServer().listen(0, '127.0.0.1')
  await once(s, 'listening')
  t.teardown(() => s.close())
  return (s.address() as { port: number }).port
}

const CASES: Array<[string, Record<string, string>, RegExp]> = [
  ['missing UPSTREAM_URL', {}, /UPSTREAM_URL is required/],
  ['PORT=abc', { UPSTREAM_URL: 'http://127.0.0.1:1', PORT: 'abc' }, /PORT must be integer/],
  ['RATE_LIMIT_BURST=0', { UPSTREAM_URL: 'http://127.0.0.1:1', RATE_LIMIT_BURST: '0' }, /RATE_LIMIT_BURST must be >= 1/],
  ['TRUST_PROXY=true', { UPSTREAM_URL: 'http://127.0.0.1:1', TRUST_PROXY: 'true' }, /TRUST_PROXY: "true" would trust every peer/],
  ['HOST=999.1.1.1 (the run sets HOST first; this one wins)', { UPSTREAM_URL: 'http://127.0.0.1:1', HOST: '999.1.1.1' }, /HOST: "999\.1\.1\.1": expected an IP address/]
]

t.test('a port already in use exits 1 with a clear message', async t => {
  const blocker = createServer().listen(0, '127.0.0.1')
  await once(blocker, 'listening')
  t.teardown(() => blocker.close())
  const port = (blocker.address() as { port: number }).port
  const { code, stdout, stderr } = await run({ UPSTREAM_URL: 'http://127.0.0.1:1', HOST: '127.0.0.1', PORT: String(port), ADMIN_PORT: String(await freePort()), LOG_LEVEL: 'fatal' })
  t.equal(code, 1)
  const line = JSON.parse(stdout.trim().split('\n').at(-1)!)
  t.match(line, { level: 60, msg: 'could not listen', err: { code: 'GW_CONFIG_INVALID', message: /^HOST\/PORT: cannot listen on 127\.0\.0\.1:\d+: .*EADDRINUSE/ } }, 'one fatal JSON log line says why, naming the variables')
  t.match(stderr, /^start-up error: HOST\/PORT: cannot listen on 127\.0\.0\.1:\d+: .*EADDRINUSE.* \[GW_CONFIG_INVALID\]\n$/, 'and so does stderr')
})

t.test('a listen address that does not resolve exits 1 naming the variable (issue 25.7)', async t => {
  const { code, stderr } = await run({ UPSTREAM_URL: 'http://127.0.0.1:1', HOST: 'no-such-host.invalid', PORT: String(await freePort()), ADMIN_PORT: String(await freePort()), LOG_LEVEL: 'silent' })
  t.equal(code, 1)
  t.match(stderr, /^start-up error: HOST\/PORT: cannot listen on no-such-host\.invalid:\d+: .* \[GW_CONFIG_INVALID\]\n$/)
})

t.test('a bad configuration exits 1 before binding any port, naming the variable', async t => {
  for (const [name, env, message] of CASES) {
    // Both ports are taken by this test: had the gateway tried to bind, it would have
    // failed with a listen error, not with the configuration error.
    const { code, stdout, stderr } = await run({ HOST: '127.0.0.1', PORT: String(await heldPort(t)), ADMIN_PORT: String(await heldPort(t)), LOG_LEVEL: 'info', ...env })
    t.equal(code, 1, `${name}: exit status 1`)
    t.match(stderr, /^configuration error: /, `${name}: says it is a configuration error`)
    t.match(stderr, message, `${name}: names the variable`)
    t.match(stderr, / \[GW_CONFIG_INVALID\]\n$/, `${name}: ends with the error's code`)
    t.equal(stdout, '', `${name}: stopped before binding or logging anything`)
  }
})

t.test('an unreachable Redis at start-up exits 1 saying what failed', async t => {
  const redisPort = await freePort()
  const started = Date.now()
  const { code, stderr, lingeredMs } = await run({ UPSTREAM_URL: 'http://127.0.0.1:1', HOST: '127.0.0.1', PORT: String(await freePort()), ADMIN_PORT: String(await freePort()), STORE: 'redis', REDIS_URL: `redis://127.0.0.1:${redisPort}`, REDIS_CONNECT_TIMEOUT_MS: '500', LOG_LEVEL: 'silent' })
  t.equal(code, 1)
  t.match(stderr, /^start-up error: Redis was not ready within 500 ms: .*ECONNREFUSED.* \[GW_STORE_CONNECT_FAILED\]\n$/)
  // Bounds with slack for a loaded machine (a node start alone can take seconds there):
  // what they catch is a retry that never gives up, and the 2 s it once lingered.
  t.ok(Date.now() - started < 15_000, 'gave up after the bound')
  // It lingered 2 s (ioredis's disconnectTimeout on the refused socket) before.
  t.ok(lingeredMs < 1500, `exited ${Math.round(lingeredMs)} ms after saying why`)
})

t.test('npm start reads .env from the working directory; variables already set win', async t => {
  const upstream = await startUpstream(t)
  const dir = mkdtempSync(join(tmpdir(), 'gw-dotenv-'))
  writeFileSync(join(dir, '.env'), `# as cp .env.example .env makes it\nUPSTREAM_URL=${upstream.url}\nRATE_LIMIT_RATE=1/h\nRATE_LIMIT_BURST=2\n`)
  const fromFile = await spawnGateway(t, {}, { cwd: dir })
  t.same(await statuses(`${fromFile.url}/ping`, 3), [200, 200, 429], 'UPSTREAM_URL and the burst of 2 come from .env')
  const overridden = await spawnGateway(t, { RATE_LIMIT_BURST: '3' }, { cwd: dir })
  t.same(await statuses(`${overridden.url}/ping`, 4), [200, 200, 200, 429], 'RATE_LIMIT_BURST=3 from the environment wins')
})

t.test('a .env that cannot be read stops the start, naming it', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'gw-dotenv-'))
  mkdirSync(join(dir, '.env'))
  const { code, stderr } = await run({ UPSTREAM_URL: 'http://127.0.0.1:1' }, dir)
  t.equal(code, 1)
  t.match(stderr, /^configuration error: \.env: .* \[GW_CONFIG_INVALID\]\n$/)
})

t.test('loadDotEnv: a file sets what is not set; no file, nothing; a bad one, a configuration error', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'gw-dotenv-'))
  const file = join(dir, '.env')
  writeFileSync(file, 'GW_TEST_DOTENV_A=from-file\nGW_TEST_DOTENV_B=from-file\n')
  process.env.GW_TEST_DOTENV_B = 'already-set'
  t.teardown(() => { delete process.env.GW_TEST_DOTENV_A; delete process.env.GW_TEST_DOTENV_B })
  t.equal(loadDotEnv(file), true)
  t.equal(process.env.GW_TEST_DOTENV_A, 'from-file')
  t.equal(process.env.GW_TEST_DOTENV_B, 'already-set', 'the environment wins')
  t.equal(loadDotEnv(join(dir, 'none')), false, 'no file: nothing to do')
  t.throws(() => loadDotEnv(dir), { code: 'GW_CONFIG_INVALID' }, 'a directory: a configuration error')
})
