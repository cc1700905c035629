/**
 * Support can unlock a client locked out by a route rule with its own keyBy: inspect lists
 * those limits, and a quota reset gives them back (examples/rules.json: `login` keyed by
 * IP, `export` by x-user-id, then API key, then IP).
 */
import t from 'tap'
import { fileURLToPath } from 'node:url'
import { startUpstream } from '../helpers/upstream.js'
import { startGateway } from '../helpers/gateway.js'
import { send, statuses } from '../helpers/http.js'
import { startRedis } from '../helpers/redis.js'
import { mayKey } from '../../src/limiter/limits.js'
import { sourceOfKey } from '../../src/identity/identify.js'

const TOKEN = 'test-admin-token-0123456789'
const RULES = fileURLToPath(new URL('../../../examples/rules.json', import.meta.url))
// The upstream answers 404 for these paths: what matters is whether it was asked.
const UP = 'upstream'
const seen = (list: number[]) => list.map(s => s === 429 ? 429 : UP)
const one = async (r: Promise<{ status: number }>) => (await r).status === 429 ? 429 : UP
const as = (method: string) => ({ method, headers: { authorization: `Bearer ${TOKEN}` } }) as never

for (const store of ['memory', 'redis'] as const) {
  t.test(`${store}: rule limits keyed by another source are inspected and reset`, async t => {
    const upstream = await startUpstream(t)
    const redisEnv: Record<string, string> = store === 'redis' ? { STORE: 'redis', REDIS_URL: (await startRedis(t)).url, REDIS_TIMEOUT_MS: '1000' } : {}
    const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, ADMIN_TOKEN: TOKEN, RATE_LIMIT_RULES_FILE: RULES, API_KEYS: 'k-1', ...redisEnv })
    const admin = (path: string, method = 'GET') => send(`${gw.adminUrl}${path}`, as(method))
    const from = '127.0.0.7'
    // Failed logins (401): only those count.
    const login = () => statuses(`${gw.url}/login?status=401`, 6, { from, method: 'POST' as never, headers: { 'x-api-key': 'k-1' } })
    t.same(seen(await login()), [UP, UP, UP, UP, UP, 429], 'login: 5/m per IP, even with an API key')
    const exportAsUser = () => statuses(`${gw.url}/export/a`, 3, { from, headers: { 'x-user-id': 'u-42' } })
    t.same(seen(await exportAsUser()), [UP, UP, 429], 'export: burst 2 per user')
    t.same(seen(await statuses(`${gw.url}/export/a`, 3, { from })), [UP, UP, 429], 'export without a user: per IP')

    const byIp = JSON.parse((await admin(`/admin/clients?ip=${from}`)).body) as { limits: Array<{ policy: string, remaining: number }> }
    const names = byIp.limits.map(l => l.policy)
    for (const name of ['default', 'login', 'export-burst', 'export-daily']) t.ok(names.includes(name), `inspect by IP lists ${name}: ${names.join(', ')}`)
    t.equal(byIp.limits.find(l => l.policy === 'login')!.remaining, 0)
    const byUser = JSON.parse((await admin('/admin/clients?client=h:x-user-id:u-42')).body) as { limits: Array<{ policy: string, remaining: number }> }
    t.same(byUser.limits.map(l => l.policy).filter(p => p.startsWith('export')), ['export-burst', 'export-daily'], 'a user-id client lists the export limits')
    t.notOk(byUser.limits.some(l => l.policy === 'login'), 'login is never keyed by the user id')
    const byKey = JSON.parse((await admin('/admin/clients?apiKey=k-1')).body) as { limits: Array<{ policy: string }> }
    t.notOk(byKey.limits.some(l => l.policy === 'login'), 'nor by the API key')

    t.equal((await admin(`/admin/clients/limits?ip=${from}`, 'DELETE')).status, 204)
    t.equal(await one(send(`${gw.url}/login`, { from, method: 'POST' as never })), UP, 'login works again after the reset')
    t.equal(await one(send(`${gw.url}/export/a`, { from })), UP, 'export by IP too')
    t.equal(await one(send(`${gw.url}/export/a`, { from, headers: { 'x-user-id': 'u-42' } })), 429, 'the user is another client: still refused')
    t.equal((await admin('/admin/clients/quota?client=h:x-user-id:u-42', 'DELETE')).status, 204)
    t.equal(await one(send(`${gw.url}/export/a`, { from, headers: { 'x-user-id': 'u-42' } })), UP, 'until its own reset')
  })
}

t.test('which rule limits an identity can be keyed by', async t => {
  const ip = { key: 'ip:1.2.3.4', source: 'ip', tier: undefined } as const
  const key = { key: 'key:abc', source: 'api-key', tier: undefined } as const
  const user = { key: 'h:x-user-id:42', source: 'header', tier: undefined } as const
  const global = { key: 'global', source: 'global', tier: undefined } as const
  const CASES: Array<[string, Array<{ kind: 'ip' } | { kind: 'api-key' } | { kind: 'header', name: string } | { kind: 'global' }>, typeof ip | typeof key | typeof user | typeof global, boolean]> = [
    ['ip: an IP', [{ kind: 'ip' }], ip, true],
    ['ip: not a key', [{ kind: 'ip' }], key, false],
    ['api-key,ip: a key', [{ kind: 'api-key' }, { kind: 'ip' }], key, true],
    ['api-key,ip: the IP fallback', [{ kind: 'api-key' }, { kind: 'ip' }], ip, true],
    ['header:x-user-id: that header', [{ kind: 'header', name: 'x-user-id' }], user, true],
    ['header:x-other: not x-user-id', [{ kind: 'header', name: 'x-other' }], user, false],
    ['header,then IP when absent', [{ kind: 'header', name: 'x-user-id' }], ip, true],
    ['ip first: a header after it is never reached', [{ kind: 'ip' }, { kind: 'header', name: 'x-user-id' }], user, false],
    ['global: only global', [{ kind: 'global' }], global, true],
    ['global: never an IP', [{ kind: 'global' }], ip, false],
    ['header,global: the header', [{ kind: 'header', name: 'x-user-id' }, { kind: 'global' }], user, true]
  ]
  for (const [name, sources, identity, expected] of CASES) t.equal(mayKey(sources, identity), expected, name)
  t.same(['ip:1.2.3.4', 'key:x', 'h:a:b', 'global', '1.2.3.4'].map(sourceOfKey), ['ip', 'api-key', 'header', 'global', undefined], 'a client= key names its source; anything else is no identity key')
})
