/**
 * The rate limit service's edges, in process over gRPC: a store that answers late, fails
 * (STORE_FAILURE_MODE=closed's StoreUnavailableError: OVER_LIMIT, so Envoy refuses whatever
 * its failure_mode_deny; anything else: UNAVAILABLE, for failure_mode_deny to decide), a
 * banned descriptor, questions Envoy should never send, the metrics, reloads, and
 * listening (a port in use; IPv6).
 */
import { once } from 'node:events'
import { createServer } from 'node:net'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { status } from '@grpc/grpc-js'
import { ManualClock } from '../../src/core/clock.js'
import { StoreUnavailableError } from '../../src/errors.js'
import { MemoryStore } from '../../src/store/memory.js'
import type { Store } from '../../src/store/types.js'
import { startGateway } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'
import { ask, descriptor as d, rlsClient, rlsConfigDir } from '../helpers/rls.js'
import { main as rlsAsk } from '../../src/rls/ask.js'
import { captureLogs } from '../helpers/logs.js'

const START = 1_699_920_000_000 + 3_600_000
const EDGE = `
domain: edge
descriptors:
  - key: remote_address
    rate_limit: {unit: hour, requests_per_unit: 5}
  - key: path
    rate_limit: {unit: hour, requests_per_unit: 5}
  - key: door
    rate_limit: {unlimited: true, name: open_door}
`
type Mode = 'sync' | 'async' | 'sync-unavailable' | 'async-unavailable' | 'sync-error' | 'async-error'

/** A memory store whose decisions can be made late or made to fail. */
function steerable (mem: MemoryStore, mode: () => Mode): Store {
  return new Proxy(mem, {
    get (target, prop) {
      if (prop === 'consume') {
        return (...args: Parameters<MemoryStore['consume']>) => {
          switch (mode()) {
            case 'sync': return target.consume(...args)
            case 'async': return Promise.resolve().then(() => target.consume(...args))
            case 'sync-unavailable': throw new StoreUnavailableError()
            case 'async-unavailable': return Promise.reject(new StoreUnavailableError())
            case 'sync-error': throw new Error('boom')
            case 'async-error': return Promise.reject(new Error('late boom'))
          }
        }
      }
      const v = Reflect.get(target, prop, target) as unknown
      return typeof v === 'function' ? v.bind(target) : v
    }
  }) as unknown as Store
}

t.test('late, failing and refused answers', async t => {
  const clock = new ManualClock(START)
  const mem = new MemoryStore({ maxKeys: 1000, clock, purgeIntervalMs: 0 })
  let mode: Mode = 'async'
  const dir = rlsConfigDir(t, { 'edge.yaml': EDGE })
  const gw = await startGateway(t, { MODE: 'decision', RLS_PORT: '0', RLS_CONFIG: dir, RATE_LIMIT_RULES_POLL_MS: '0', ADMIN_TOKEN: 'rls-test-admin-token-0123456789' }, { clock, store: steerable(mem, () => mode) })
  const client = rlsClient(t, gw.rlsAddress)
  const two = { domain: 'edge', descriptors: [{ ...d(['remote_address', '10.0.0.1']), hits_addend: { value: 2 } }, d(['path', '/a'])] }

  let res = await ask(client, two)
  t.match(res, { overall_code: 'OK', statuses: [{ code: 'OK', limit_remaining: 3 }, { code: 'OK', limit_remaining: 4 }] }, 'a late store, two addends: a call each')
  res = await ask(client, { domain: 'edge', descriptors: [d(['path', '/a'])] })
  t.match(res.statuses, [{ limit_remaining: 3 }], 'a late store, one call')
  res = await ask(client, { domain: 'edge', descriptors: [d(['path', '/b']), d(['path', '/b'])] })
  t.match(res.statuses, [{ code: 'OK', limit_remaining: 4 }, { code: 'OK', limit_remaining: 4 }], 'the same descriptor twice is one counter, charged once')
  res = await ask(client, { domain: 'edge', descriptors: [{ entries: [{ key: 'path' }] }] })
  t.match(res.statuses, [{ code: 'OK', current_limit: { requests_per_unit: 5 } }], 'an entry without a value meets the key alone')
  res = await ask(client, { domain: 'edge', descriptors: [{ ...d(['path', '/c']), limit: { requests_per_unit: 1, unit: 'YEAR' } }] })
  t.match(res.statuses, [{ current_limit: { requests_per_unit: 5, unit: 'HOUR' } }], 'an override in a unit this service does not count (a year) is ignored: the configured limit')
  res = await ask(client, { domain: 'edge', descriptors: [{ ...d(['path', '/c']), limit: { requests_per_unit: 0, unit: 'SECOND' } }] })
  t.match(res, { overall_code: 'OVER_LIMIT', statuses: [{ code: 'OVER_LIMIT', current_limit: { requests_per_unit: 0, unit: 'SECOND' } }] }, 'an override of 0 (proto3 sends no field) blocks')

  res = await ask(client, { domain: 'edge', descriptors: [d(['path', '/b']), d(['remote_address', '10.0.0.19']), d(['path', '/b'])] })
  t.match(res.statuses, [{ code: 'OK', limit_remaining: 3 }, { code: 'OK', limit_remaining: 4 }, { code: 'OK', limit_remaining: 3 }], 'a counter twice beside another: each charged once, in one call')

  // One call (one cost, no counter twice) or a call per cost: the store's failure answers alike.
  const one = { domain: 'edge', descriptors: [d(['remote_address', '10.0.0.2']), d(['path', '/d'])] }
  for (const [name, question] of [['one call', one], ['a call per cost', two]] as const) {
    for (const m of ['sync-unavailable', 'async-unavailable'] as const) {
      mode = m
      res = await ask(client, question)
      t.match(res, { overall_code: 'OVER_LIMIT', statuses: [{ code: 'OVER_LIMIT', limit_remaining: 0, current_limit: { requests_per_unit: 5 } }, { code: 'OVER_LIMIT' }], response_headers_to_add: [] }, `${name}, ${m}: STORE_FAILURE_MODE=closed answers OVER_LIMIT`)
    }
    for (const m of ['sync-error', 'async-error'] as const) {
      mode = m
      await t.rejects(ask(client, question), { code: status.UNAVAILABLE, details: /^rate limit service failed: (late )?boom$/ }, `${name}, ${m}: anything else is UNAVAILABLE (Envoy's failure_mode_deny decides)`)
    }
  }

  mode = 'sync'
  await t.rejects(ask(client, { domain: 'edge', descriptors: [] }), { code: status.INVALID_ARGUMENT, details: 'rate limit descriptor list must not be empty' })
  await t.rejects(ask(client, { domain: 'edge', descriptors: [{ entries: [] }] }), { code: status.INVALID_ARGUMENT, details: /descriptor 0: every descriptor needs entries/ })
  await t.rejects(ask(client, { domain: 'edge', descriptors: Array.from({ length: 65 }, () => d(['path', '/'])) }), { code: status.INVALID_ARGUMENT, details: 'at most 64 descriptors in a question, got 65' })
  await t.rejects(ask(client, { domain: 'x'.repeat(1025), descriptors: [d(['path', '/'])] }), { code: status.INVALID_ARGUMENT, details: 'a domain of at most 1024 characters' })
  await t.rejects(ask(client, { domain: 'edge', descriptors: [d(...Array.from({ length: 33 }, (_, i): [string, string] => [`k${i}`, 'v']))] }), { code: status.INVALID_ARGUMENT, details: /descriptor 0: at most 32 entries/ })
  await t.rejects(ask(client, { domain: 'edge', descriptors: [d(['path', '/']), { entries: [{ key: 'path', value: 'v'.repeat(1021) }] }] }), { code: status.INVALID_ARGUMENT, details: /descriptor 1: at most 32 entries, each key and value together at most 1024 characters/ })
  t.equal((await ask(client, { domain: 'edge', descriptors: [{ entries: [{ key: 'path', value: 'v'.repeat(1020) }] }] })).overall_code, 'OK', '1024 characters is within')

  // A ban names the question's first limited descriptor (the admin API's, or RATE_LIMIT_BAN_AFTER's).
  const A = { authorization: 'Bearer rls-test-admin-token-0123456789' }
  const q = (ip: string) => `domain=edge&entry=${encodeURIComponent(`remote_address=${ip}`)}`
  const ban = await send(`${gw.adminUrl}/admin/rls/descriptor/ban?${q('10.0.0.9')}`, { method: 'PUT', headers: { ...A, 'content-type': 'application/json' }, body: JSON.stringify({ duration: '10m' }) })
  t.equal(ban.status, 204, 'PUT /admin/rls/descriptor/ban')
  res = await ask(client, { domain: 'edge', descriptors: [d(['remote_address', '10.0.0.9']), d(['path', '/z'])] })
  t.match(res, { overall_code: 'OVER_LIMIT', statuses: [{ code: 'OVER_LIMIT', duration_until_reset: { seconds: 600 } }, { code: 'OVER_LIMIT' }], response_headers_to_add: [{ key: 'retry-after', value: '600' }] }, 'banned: every descriptor OVER_LIMIT, Retry-After the ban\'s')
  res = await ask(client, { domain: 'edge', descriptors: [d(['remote_address', '10.0.0.9']), d(['remote_address', '10.0.0.9']), { ...d(['path', '/z']), hits_addend: { value: 2 } }] })
  t.match(res, { overall_code: 'OVER_LIMIT', statuses: [{ code: 'OVER_LIMIT' }, { code: 'OVER_LIMIT' }, { code: 'OVER_LIMIT' }] }, 'banned, with a counter twice and another cost (a call per cost): every descriptor OVER_LIMIT')
  res = await ask(client, { domain: 'edge', descriptors: [d(['path', '/z']), d(['remote_address', '10.0.0.9'])] })
  t.equal(res.overall_code, 'OK', 'the ban is the first descriptor\'s, not any descriptor\'s')
  const seen = JSON.parse((await send(`${gw.adminUrl}/admin/rls/descriptor?${q('10.0.0.9')}`, { headers: A })).body) as Record<string, unknown>
  t.match(seen, { domain: 'edge', subject: 'rls:edge|remote_address_10.0.0.9', limit: { path: 'edge.remote_address', unit: 'hour', requestsPerUnit: 5, unlimited: false }, bannedMs: 600_000, limits: [{ policy: 'edge.remote_address', remaining: 4 }] }, 'GET /admin/rls/descriptor: its limit, standing (charged by the question it was second in) and ban')
  t.equal((await send(`${gw.adminUrl}/admin/rls/descriptor/ban?${q('10.0.0.9')}`, { method: 'DELETE', headers: A })).status, 204, 'DELETE …/ban')
  t.equal((await ask(client, { domain: 'edge', descriptors: [d(['remote_address', '10.0.0.9'])] })).overall_code, 'OK', 'unbanned')
  t.equal((await send(`${gw.adminUrl}/admin/rls/descriptor/ban?${q('10.0.0.9')}`, { method: 'PUT', headers: { ...A, 'content-type': 'application/json' }, body: JSON.stringify({ duration: 'soon' }) })).status, 400, 'a ban\'s duration is checked as a client ban\'s')
  t.equal((await send(`${gw.adminUrl}/admin/rls/descriptor/ban?${q('10.0.0.8')}`, { method: 'PUT', headers: { ...A, 'content-type': 'application/json' }, body: '{}' })).status, 204, 'the default ban length')
  for (let i = 0; i < 4; i++) await ask(client, { domain: 'edge', descriptors: [d(['remote_address', '10.0.0.7'])] })
  t.match(JSON.parse((await send(`${gw.adminUrl}/admin/rls/descriptor?${q('10.0.0.7')}`, { headers: A })).body), { limits: [{ remaining: 1 }] })
  t.equal((await send(`${gw.adminUrl}/admin/rls/descriptor/limits?${q('10.0.0.7')}`, { method: 'DELETE', headers: A })).status, 204, 'DELETE …/limits')
  t.match(JSON.parse((await send(`${gw.adminUrl}/admin/rls/descriptor?${q('10.0.0.7')}`, { headers: A })).body), { limits: [{ remaining: 5 }] }, 'its counter back in full')
  const none = await send(`${gw.adminUrl}/admin/rls/descriptor/limits?domain=edge&entry=nothing`, { method: 'DELETE', headers: A })
  t.match({ status: none.status, body: JSON.parse(none.body) }, { status: 404, body: { detail: /rls:edge\|nothing: no limit to reset/ } })
  t.match(JSON.parse((await send(`${gw.adminUrl}/admin/rls/descriptor?domain=edge&entry=nothing`, { headers: A })).body), { subject: 'rls:edge|nothing', limit: null, limits: [] }, 'a descriptor meeting no limit')
  t.equal((await send(`${gw.adminUrl}/admin/rls/descriptor?domain=edge`, { headers: A })).status, 400, 'entry is required')
  t.match(JSON.parse((await send(`${gw.adminUrl}/admin/rls/descriptor?domain=edge&entry=door%3Dx`, { headers: A })).body), { limit: { path: 'edge.door', name: 'open_door', unlimited: true, unit: null }, limits: [] }, 'an unlimited one: its limit, no counter')

  const metrics = (await send(`${gw.adminUrl}/metrics`, { headers: { authorization: 'Bearer rls-test-admin-token-0123456789' } })).body
  t.match(metrics, /gateway_rls_descriptors_total\{domain="edge",descriptor="path",code="ok"\} \d+/, 'descriptors by domain, configured descriptor and outcome')
  t.match(metrics, /gateway_rls_descriptors_total\{domain="edge",descriptor="remote_address",code="banned"\} 3/)
  t.match(metrics, /gateway_rls_descriptors_total\{domain="edge",descriptor="remote_address",code="store_error"\} 4/)
  t.notMatch(metrics, /10\.0\.0\.|\/a"/, 'never a descriptor value')
  t.match(metrics, /gateway_rls_decision_seconds_count\{code="OVER_LIMIT"\} \d+/)

  // Reloads through the rules reload (SIGHUP, POST /admin/rules/reload).
  gw.app.reloadRules()
  t.match(metrics, /gateway_rls_descriptors_total/)
  writeFileSync(join(dir, 'edge.yaml'), EDGE.replace(/requests_per_unit: 5\}\n  - key: path/, 'requests_per_unit: 7}\n  - key: path'))
  gw.app.reloadRules()
  res = await ask(client, { domain: 'edge', descriptors: [d(['remote_address', '10.0.0.2'])] })
  t.match(res.statuses, [{ current_limit: { requests_per_unit: 7 } }], 'a changed file is applied')
  writeFileSync(join(dir, 'edge.yaml'), 'domain: edge\ndescriptors: {}\n')
  gw.app.reloadRules()
  gw.app.reloadRules()
  res = await ask(client, { domain: 'edge', descriptors: [d(['remote_address', '10.0.0.2'])] })
  t.match(res.statuses, [{ current_limit: { requests_per_unit: 7 } }], 'a bad one is not')
  const reloads = (await send(`${gw.adminUrl}/metrics`, { headers: { authorization: 'Bearer rls-test-admin-token-0123456789' } })).body
  t.match(reloads, /gateway_rls_config_reloads_total\{result="applied"\} 1/)
  t.match(reloads, /gateway_rls_config_reloads_total\{result="rejected"\} 2/)
})

t.test('listening: a port in use is named; IPv6 loopback', async t => {
  const dir = rlsConfigDir(t, { 'edge.yaml': EDGE })
  const taken = createServer()
  taken.listen(0, '127.0.0.1')
  await once(taken, 'listening')
  t.teardown(() => { taken.close() })
  const port = (taken.address() as { port: number }).port
  await t.rejects(startGateway(t, { MODE: 'decision', RLS_PORT: String(port), RLS_CONFIG: dir }), /RLS_HOST\/RLS_PORT: cannot listen on 127\.0\.0\.1:\d+/)

  const v6 = await startGateway(t, { MODE: 'decision', RLS_PORT: '0', RLS_HOST: '::1', RLS_CONFIG: dir, RATE_LIMIT_HEADERS: 'none' })
  const client = rlsClient(t, `[::1]:${v6.rlsAddress.split(':').at(-1)!}`)
  const res = await ask(client, { domain: 'edge', descriptors: [d(['path', '/'])] })
  t.match(res, { overall_code: 'OK', response_headers_to_add: [] }, 'over IPv6; RATE_LIMIT_HEADERS=none: no headers for Envoy to add')
  await v6.app.close()
  await v6.app.rls!.close(1000)
  t.pass('closing twice is one close')
})

t.test('npm run rls:ask: a question from the command line, its answer on one line', async t => {
  const dir = rlsConfigDir(t, { 'edge.yaml': EDGE })
  const gw = await startGateway(t, { MODE: 'decision', RLS_PORT: '0', RLS_CONFIG: dir })
  const run = async (...args: string[]): Promise<[number, string[]]> => {
    const lines: string[] = []
    const code = await rlsAsk(args, line => { lines.push(line) })
    return [code, lines]
  }
  t.same(await run(gw.rlsAddress, 'edge', 'remote_address=10.0.0.1', 'path=/a,extra', '--hits=2'), [0, ['OK: OK 3/5 per HOUR, OK (no limit)']], 'entries by `,`, a key without a value, --hits')
  t.same(await run(gw.rlsAddress, 'edge', 'door=x'), [0, ['OK: OK (unlimited)']])
  t.same(await run(gw.rlsAddress, 'edge', 'remote_address=10.0.0.1', '--hits=4'), [0, ['OVER_LIMIT: OVER_LIMIT 0/5 per HOUR']], 'OVER_LIMIT is an answer: exit 0, as curl with a 429')
  const [code, lines] = await run(gw.rlsAddress, 'edge')
  t.equal(code, 2)
  t.match(lines, [/^rls:ask: usage: npm run rls:ask -- <host:port> <domain>/])
  const refused = await run('127.0.0.1:1', 'edge', 'a=b')
  t.match(refused, [2, [/^rls:ask: 14 UNAVAILABLE/]], 'nothing listening: exit 2')
})

t.test('RATE_LIMIT_DRY_RUN: every limit reports and none refuses; over-limit descriptors in the violation log and the top offenders', async t => {
  const { logger, lines } = captureLogs()
  const dir = rlsConfigDir(t, { 'edge.yaml': EDGE })
  const dry = await startGateway(t, { MODE: 'decision', RLS_PORT: '0', RLS_CONFIG: dir, RATE_LIMIT_DRY_RUN: 'true' }, { logger })
  const client = rlsClient(t, dry.rlsAddress)
  let res
  for (let i = 0; i < 6; i++) res = await ask(client, { domain: 'edge', descriptors: [d(['remote_address', '10.0.0.1'])] })
  t.match(res, { overall_code: 'OK', statuses: [{ code: 'OK', limit_remaining: 0 }] }, 'the 6th of 5 an hour: OK')
  res = await ask(client, { domain: 'edge', descriptors: [{ ...d(['remote_address', '10.0.0.1']), limit: { requests_per_unit: 0, unit: 'SECOND' } }] })
  t.equal(res.overall_code, 'OK', 'an override too')

  const token = 'rls-offenders-admin-token-0123456789'
  const live = await startGateway(t, { MODE: 'decision', RLS_PORT: '0', RLS_CONFIG: dir, ADMIN_TOKEN: token }, { logger })
  const liveClient = rlsClient(t, live.rlsAddress)
  for (let i = 0; i < 7; i++) await ask(liveClient, { domain: 'edge', descriptors: [d(['remote_address', '10.0.0.66'])] })
  const offenders = JSON.parse((await send(`${live.adminUrl}/admin/offenders`, { headers: { authorization: `Bearer ${token}` } })).body) as { offenders: Array<{ client: string, count: number }> }
  t.match(offenders.offenders[0], { client: 'rls:edge|remote_address_10.0.0.66', count: 2 }, 'the top offenders name the descriptor')
  await dry.app.close()
  await live.app.close()
  t.match(lines.find(l => l.msg === 'dry run: requests over their limit let through'), { client: 'rls:edge|remote_address_10.0.0.1', count: 2, policies: ['edge.remote_address', 'edge.override.0/second'] })
  t.match(lines.find(l => l.msg === 'requests refused by rate limits'), { client: 'rls:edge|remote_address_10.0.0.66', count: 2, policies: ['edge.remote_address'] })
})
