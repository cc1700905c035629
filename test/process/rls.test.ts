/**
 * The rate limit service as a real process (`npm start`'s server.js, MODE=decision with
 * only RLS_PORT: a pure rate limit service), asked by a client that is not the server's own
 * library (gRPC's C core from Python, with protoc's messages: test/fixtures/rls_client.py),
 * so the wire format is checked, not grpc-js against itself. Also: the standard health
 * service, RLS_CONFIG changed while it runs (applied; a bad file keeps the limits in
 * force), and SIGTERM.
 */
import { execFile } from 'node:child_process'
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'
import { freePort, spawnGateway } from '../helpers/process.js'
import { ask, descriptor, rlsClient } from '../helpers/rls.js'

const run = promisify(execFile)
const PYTHON = '/usr/bin/python3'
const CLIENT = fileURLToPath(new URL('../../../test/fixtures/rls_client.py', import.meta.url))
const PROTO_DIR = fileURLToPath(new URL('../../../proto', import.meta.url))

// A day's window: a minute's could end between the questions (a UTC day ends at 00:00).
const CONFIG = `
domain: edge_proxy_per_ip
descriptors:
  - key: remote_address
    rate_limit:
      unit: day
      requests_per_unit: 2
      name: per_ip
  - key: remote_address
    value: 50.0.0.5
    rate_limit:
      unit: second
      requests_per_unit: 0
`

/** response_headers_to_add as name → value. */
function headersOf (answer: Record<string, unknown>): Record<string, string> {
  return Object.fromEntries((answer.response_headers_to_add as Array<{ key: string, value: string }>).map(h => [h.key, h.value]))
}

async function python (address: string, questions: unknown[]): Promise<Array<Record<string, unknown>>> {
  const out = mkdtempSync(join(tmpdir(), 'gw-rls-py-'))
  try {
    const { stdout } = await run(PYTHON, [CLIENT, address, PROTO_DIR, out, JSON.stringify(questions)], { timeout: 60_000 })
    return stdout.trim().split('\n').map(l => JSON.parse(l) as Record<string, unknown>)
  } finally {
    rmSync(out, { recursive: true, force: true })
  }
}

t.test('a pure rate limit service, asked by Python\'s gRPC (C core) with protoc\'s messages', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'gw-rls-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'edge.yaml')
  writeFileSync(file, CONFIG)
  const rlsPort = await freePort()
  const gw = await spawnGateway(t, { MODE: 'decision', RLS_PORT: String(rlsPort), RLS_CONFIG: dir, RATE_LIMIT_RULES_POLL_MS: '100', LOG_LEVEL: 'info' }, { captureLogs: true })
  const address = `127.0.0.1:${rlsPort}`
  const q = (ip: string, extra: Record<string, unknown> = {}) => ({ domain: 'edge_proxy_per_ip', descriptors: [{ entries: [{ key: 'remote_address', value: ip }], ...extra }] })
  const answers = await python(address, [q('10.0.0.1'), q('10.0.0.1'), q('10.0.0.1'), q('50.0.0.5'), q('10.0.0.2', { hits_addend: 2 }), { domain: '', descriptors: [] }])
  t.match(answers[0], {
    overall_code: 'OK',
    statuses: [{ code: 'OK', current_limit: { name: 'per_ip', requests_per_unit: 2, unit: 'DAY' }, limit_remaining: 1 }]
  }, 'OK, the limit and what is left, through protoc\'s decoder')
  t.match(headersOf(answers[0]!), { 'ratelimit-policy': '"per_ip";q=2;w=86400', ratelimit: /^"per_ip";r=1;t=\d+$/, 'x-ratelimit-limit': '2', 'x-ratelimit-remaining': '1' }, 'the rate-limit headers (RATE_LIMIT_HEADERS=both) for Envoy to add')
  t.match((answers[0]!.statuses as Array<Record<string, unknown>>)[0]!.duration_until_reset, /^\d+(\.\d+)?s$/, 'duration_until_reset is a google.protobuf.Duration')
  t.match(answers[1], { overall_code: 'OK', statuses: [{ limit_remaining: undefined }] }, 'the second: none left (proto3 leaves a 0 out)')
  t.match(answers[2], { overall_code: 'OVER_LIMIT', statuses: [{ code: 'OVER_LIMIT' }] }, 'the third is over')
  t.match(headersOf(answers[2]!), { 'retry-after': /^\d+$/, 'x-ratelimit-remaining': '0' }, '…with Retry-After')
  t.match(answers[3], { overall_code: 'OVER_LIMIT', statuses: [{ code: 'OVER_LIMIT', current_limit: { unit: 'SECOND' } }] }, 'a blocked value (requests_per_unit: 0)')
  t.match(answers[4], { overall_code: 'OK', statuses: [{ code: 'OK' }] }, 'a descriptor\'s hits_addend (google.protobuf.UInt64Value) decodes')
  t.equal((answers[4]!.statuses as Array<Record<string, unknown>>)[0]!.limit_remaining, undefined, '…and took both requests')
  t.match(answers[5], { error: 'INVALID_ARGUMENT', details: 'rate limit domain must not be empty' })
  t.same(answers[6], { health: '0801' }, 'the standard health service says SERVING')

  // RLS_CONFIG changed while it runs: applied; then a bad file: the limits in force stay.
  const client = rlsClient(t, address)
  // Files appear whole (written aside, then renamed), as a deploy or a ConfigMap swap makes
  // them: the poll never reads one half written.
  const put = (name: string, text: string): void => {
    writeFileSync(join(dir, `${name}.tmp`), text)
    renameSync(join(dir, `${name}.tmp`), join(dir, name))
  }
  put('edge.yaml', CONFIG.replace('requests_per_unit: 2', 'requests_per_unit: 50'))
  const deadline = Date.now() + 10_000
  let applied = false
  while (!applied && Date.now() < deadline) {
    const res = await ask(client, { domain: 'edge_proxy_per_ip', descriptors: [descriptor(['remote_address', '10.0.0.3'])] })
    applied = res.statuses[0]!.current_limit?.requests_per_unit === 50
    if (!applied) await new Promise(resolve => setTimeout(resolve, 50))
  }
  t.ok(applied, 'a changed RLS_CONFIG is in force within a poll')
  put('broken.yaml', 'domain: other\ndescriptors:\n  - key: a\n    rate_limit: {unit: fortnight, requests_per_unit: 1}\n')
  const rejectedDeadline = Date.now() + 10_000
  while (!gw.logs.some(l => l.includes('RLS_CONFIG rejected')) && Date.now() < rejectedDeadline) await new Promise(resolve => setTimeout(resolve, 50))
  const rejected = gw.logs.map(l => JSON.parse(l) as Record<string, unknown>).find(l => l.msg === 'RLS_CONFIG rejected; the limits in force stay')
  t.match(rejected, { reason: /broken\.yaml: edge_proxy_per_ip|broken\.yaml: other\.a: invalid rate limit unit 'fortnight'/ }, 'a bad file is logged, naming it and why')
  const still = await ask(client, { domain: 'edge_proxy_per_ip', descriptors: [descriptor(['remote_address', '10.0.0.3'])] })
  t.equal(still.statuses[0]!.current_limit!.requests_per_unit, 50, 'and the limits in force stay')

  const ready = gw.logs.map(l => JSON.parse(l) as Record<string, unknown>).find(l => l.msg === 'gateway ready')
  t.match(ready, { mode: 'decision', rlsPort })
  gw.child.kill('SIGTERM')
  const [code] = await gw.exited
  t.equal(code, 0, 'SIGTERM: exits 0')
})
