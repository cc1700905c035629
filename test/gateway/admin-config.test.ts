import t from 'tap'
import { fileURLToPath } from 'node:url'
import { startUpstream } from '../helpers/upstream.js'
import { startGateway } from '../helpers/gateway.js'
import { send, statuses } from '../helpers/http.js'
import { captureLogs } from '../helpers/logs.js'

const TOKEN = 'test-admin-token-0123456789'
const json = (method: string, body?: unknown) => ({
  method,
  headers: { authorization: `Bearer ${TOKEN}`, 'x-admin-actor': 'alice', ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
  ...(body === undefined ? {} : { body: JSON.stringify(body) })
}) as never

t.test('read the limits in force; change the default limit, a tier, the rules, dry run and the emergency factor at run time', async t => {
  const upstream = await startUpstream(t)
  const { logger, lines } = captureLogs()
  const gw = await startGateway(t, {
    UPSTREAM_URL: upstream.url, ADMIN_TOKEN: TOKEN, RATE_LIMIT_RATE: '1/h', RATE_LIMIT_BURST: '4',
    RATE_LIMIT_TIERS: 'pro=1/h:10', API_KEYS: 'k-pro:pro'
  }, { logger })
  const config = async () => JSON.parse((await send(`${gw.adminUrl}/admin/config`, json('GET'))).body)

  t.match(await config(), {
    version: 0, algorithm: 'token-bucket', dryRun: false, factor: { emergency: 1, adaptive: 1, effective: 1 },
    limits: { default: { rate: '1/h', burst: 4 }, tiers: { pro: { rate: '1/h', burst: 10 } }, global: null }, rulesSource: 'none', rules: [], settings: {}
  })

  // Emergency: halve every limit.
  const halved = await send(`${gw.adminUrl}/admin/config`, json('PATCH', { factor: 0.5 }))
  t.equal(halved.status, 200)
  t.match(JSON.parse(halved.body), { version: 1, factor: { emergency: 0.5, effective: 0.5 }, limits: { default: { rate: '0.5/h', burst: 2 }, tiers: { pro: { burst: 5 } } } })
  t.same(await statuses(`${gw.url}/ping`, 3, { from: '127.0.0.2' }), [200, 200, 429], 'the next requests see burst 2')
  t.equal((await send(`${gw.url}/ping`, { from: '127.0.0.3' })).headers['ratelimit-policy'], '"default";q=2;w=14400', 'the headers show the scaled quota')
  t.match(lines.find(l => l.msg === 'runtime settings changed'), { actor: 'alice@127.0.0.1', version: 1, settings: { factor: 0.5 } }, 'the change is logged with who and what')

  // A new default limit and tier, over the factor; then the factor dropped (null).
  t.equal((await send(`${gw.adminUrl}/admin/config`, json('PATCH', { limit: { rate: '1/h', burst: 6 }, tiers: { pro: { rate: '2/h', burst: 20 } }, factor: null }))).status, 200)
  t.match(await config(), { version: 2, factor: { emergency: 1 }, limits: { default: { burst: 6 }, tiers: { pro: { rate: '2/h', burst: 20 } } }, settings: { limit: { burst: 6 } } })
  t.same(await statuses(`${gw.url}/ping`, 7, { from: '127.0.0.4' }), [200, 200, 200, 200, 200, 200, 429])

  // Rules through the API.
  const rules = { rules: [{ name: 'search', path: '/search', rate: '1/h', burst: 1, exclusive: true }] }
  t.equal((await send(`${gw.adminUrl}/admin/config`, json('PATCH', { rules }))).status, 200)
  t.match(await config(), { rulesSource: 'admin', rules: [{ name: 'search', path: '/search', limits: [{ name: 'search', rate: '1/h', burst: 1 }] }] })
  t.same((await statuses(`${gw.url}/search`, 2, { from: '127.0.0.5' })).map(s => s === 429), [false, true], 'the rule applies at once')

  // Dry run for the whole gateway.
  t.equal((await send(`${gw.adminUrl}/admin/config`, json('PATCH', { dryRun: true }))).status, 200)
  t.same(await statuses(`${gw.url}/ping`, 3, { from: '127.0.0.4' }), [200, 200, 200], 'nothing refused in dry run')

  // Back to the environment.
  t.equal((await send(`${gw.adminUrl}/admin/config`, json('DELETE'))).status, 200)
  t.match(await config(), { version: 5, dryRun: false, limits: { default: { burst: 4 } }, rules: [], settings: {} })
})

t.test('a change is validated like the environment: a bad one is refused with 400 and changes nothing', async t => {
  const upstream = await startUpstream(t)
  const gw = await startGateway(t, {
    UPSTREAM_URL: upstream.url, ADMIN_TOKEN: TOKEN, RATE_LIMIT_TIERS: 'pro=1/s:10', GLOBAL_RATE_LIMIT_RATE: '100/s',
    RATE_LIMIT_RULES_FILE: fileURLToPath(new URL('../../../examples/rules.json', import.meta.url))
  })
  t.match(JSON.parse((await send(`${gw.adminUrl}/admin/config`, json('GET'))).body), {
    rulesSource: 'file', limits: { global: { rate: '100/s', burst: 100 } }, rules: [{ name: 'health', skip: true }, { name: 'login' }]
  }, 'the rules file and the global limit are shown')
  // [body, what the 400 must say]
  const BAD: Array<[unknown, RegExp]> = [
    [{ limit: { rate: 'fast', burst: 2 } }, /limit: expected a positive number/],
    [{ limit: { rate: '1/s' } }, /must have required property 'burst'/],
    [{ tiers: { gold: { rate: '1/s', burst: 1 } } }, /tiers: "gold" is not a tier \(defined: pro\)/],
    [{ factor: 0 }, /factor must be > 0/],
    [{ factor: 2 }, /factor must be <= 1/],
    [{ rules: { rules: [{ name: 'a', path: 'x', rate: '1/s' }] } }, /rules: rule 1 \("a"\) path must match pattern/],
    [{ burst: 3 }, /must NOT have additional properties/],
    [{ limit: { rate: '1/s', burst: 4 } }, /rules: rule "search" of the rules file: cost 5 is more than the capacity of limit "default" \(4\)/],
    [{}, /must NOT have fewer than 1 properties/]
  ]
  for (const [body, message] of BAD) {
    const r = await send(`${gw.adminUrl}/admin/config`, json('PATCH', body))
    t.equal(r.status, 400, JSON.stringify(body))
    t.match(JSON.parse(r.body), { status: 400, code: 'GW_ADMIN_INVALID', detail: message })
  }
  const after = JSON.parse((await send(`${gw.adminUrl}/admin/config`, json('GET'))).body)
  t.match(after, { version: 0, settings: {} }, 'nothing changed')
  t.equal((await send(`${gw.adminUrl}/admin/config`, json('PUT', { limit: { rate: '5/s', burst: 5 } }))).status, 200, 'PUT replaces the settings whole')
})
