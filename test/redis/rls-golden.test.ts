/**
 * The rate limit service against a golden table built from envoyproxy/ratelimit's README
 * (its configuration examples 1–9: nested descriptors, a counter per value, the most
 * specific match, depth, `unlimited`, `shadow_mode`, `replaces`, `detailed_metric`,
 * wildcards) and this gateway's own additions: question → expected answer, over gRPC, on
 * the memory store and on Redis with two instances answering in turn (each question goes
 * to the other one, and the answers are the same as one instance's).
 *
 * Where this gateway differs from envoyproxy/ratelimit, the table says so: a refused
 * question charges no descriptor (envoyproxy/ratelimit charges each).
 */
import t, { type Test } from 'tap'
import { ManualClock } from '../../src/core/clock.js'
import { startGateway } from '../helpers/gateway.js'
import { startRedis } from '../helpers/redis.js'
import { send } from '../helpers/http.js'
import { ask, descriptor, rlsClient, rlsConfigDir, type RlsClient } from '../helpers/rls.js'
import type { RlsRequest, RlsResponse, RlsStatus } from '../../src/rls/service.js'

const TOKEN = 'rls-golden-admin-token-0123456789'
/** 01:00 UTC: second, minute and day windows all a while from their edges. */
const START = 1_699_920_000_000 + 3_600_000

const CONFIG: Record<string, string> = {
  'mongo.yaml': `
domain: mongo_cps
descriptors:
  - key: database
    value: users
    rate_limit:
      unit: second
      requests_per_unit: 500
  - key: database
    value: default
    rate_limit:
      unit: second
      requests_per_unit: 500
`,
  'messaging.yaml': `
domain: messaging
descriptors:
  # Only allow 5 marketing messages a day
  - key: message_type
    value: marketing
    descriptors:
      - key: to_number
        rate_limit:
          unit: day
          requests_per_unit: 5
  # Only allow 100 messages a day to any unique phone number
  - key: to_number
    rate_limit:
      unit: day
      requests_per_unit: 100
`,
  'edge.yaml': `
domain: edge_proxy_per_ip
descriptors:
  - key: remote_address
    rate_limit:
      unit: second
      requests_per_unit: 10
  # Black list IP
  - key: remote_address
    value: 50.0.0.5
    rate_limit:
      unit: second
      requests_per_unit: 0
`,
  'example4-shallow.yaml': `
domain: example4
descriptors:
  - key: key
    value: value
    rate_limit:
      requests_per_unit: 300
      unit: second
`,
  'example4-deep.yaml': `
domain: example4-deep
descriptors:
  - key: key
    value: value
    descriptors:
      - key: subkey
        rate_limit:
          requests_per_unit: 300
          unit: second
`,
  'internal.yaml': `
domain: internal
descriptors:
  - key: ldap
    rate_limit:
      unlimited: true
  - key: azure
    rate_limit:
      unit: minute
      requests_per_unit: 100
`,
  'example6.yaml': `
domain: example6
descriptors:
  - key: service
    descriptors:
      - key: user
        value: user-a
        rate_limit:
          requests_per_unit: 10
          unit: second
        shadow_mode: true
      - key: user
        value: user-b
        rate_limit:
          requests_per_unit: 20
          unit: second
`,
  'example7.yaml': `
domain: example7
descriptors:
  - key: key_1
    value: value_1
    descriptors:
      - key: user
        value: bkthomps
        rate_limit:
          name: specific_limit
          requests_per_unit: 5
          unit: second
  - key: key_2
    value: value_2
    descriptors:
      - key: user
        value: bkthomps
        rate_limit:
          replaces:
            - name: specific_limit
          requests_per_unit: 10
          unit: second
`,
  'example8.yaml': `
domain: example8
descriptors:
  - key: key1
    detailed_metric: true
    rate_limit:
      unit: minute
      requests_per_unit: 10
  - key: key1
    value: value1
    rate_limit:
      unit: minute
      requests_per_unit: 20
`,
  'example9.yaml': `
domain: example9
descriptors:
  - key: key1
    value: value*
    rate_limit:
      unit: minute
      requests_per_unit: 20
`,
  'ours.yaml': `
domain: ours
descriptors:
  - key: five_minutes
    rate_limit:
      unit: minute
      unit_multiplier: 5
      requests_per_unit: 2
  - key: bucket
    rate_limit:
      algorithm: token-bucket
      unit: second
      requests_per_unit: 1
      burst: 2
`
}

interface Expect { code: 'OK' | 'OVER_LIMIT', remaining?: number, limit?: { name?: string, requests_per_unit: number, unit: string } | null }
interface Step { say: string, req: RlsRequest, times?: number, overall: 'OK' | 'OVER_LIMIT', statuses: Expect[], advanceMs?: number }

const d = descriptor
const SECOND = (n: number, name = '') => ({ name, requests_per_unit: n, unit: 'SECOND' })

/** The table: each step asked `times` times (default 1); the last answer is compared. */
const TABLE: Step[] = [
  // Example 1: a limit per configured value; another value meets none.
  { say: 'ex1: database=users, 500/s', req: { domain: 'mongo_cps', descriptors: [d(['database', 'users'])] }, overall: 'OK', statuses: [{ code: 'OK', remaining: 499, limit: SECOND(500) }] },
  { say: 'ex1: database=other meets no limit', req: { domain: 'mongo_cps', descriptors: [d(['database', 'other'])] }, overall: 'OK', statuses: [{ code: 'OK', remaining: 0, limit: null }] },
  // Example 2: nested descriptors; a value-less entry is a counter per value; several descriptors in one question.
  ...[4, 3, 2, 1, 0].map((left, i): Step => ({
    say: `ex2: marketing to 2061111111, message ${i + 1} of 5`,
    req: { domain: 'messaging', descriptors: [d(['message_type', 'marketing'], ['to_number', '2061111111']), d(['to_number', '2061111111'])] },
    overall: 'OK',
    statuses: [{ code: 'OK', remaining: left, limit: { requests_per_unit: 5, unit: 'DAY' } }, { code: 'OK', remaining: 95 + left, limit: { requests_per_unit: 100, unit: 'DAY' } }]
  })),
  {
    say: 'ex2: the 6th marketing message is over; nothing is charged (ours; envoyproxy/ratelimit would charge to_number)',
    req: { domain: 'messaging', descriptors: [d(['message_type', 'marketing'], ['to_number', '2061111111']), d(['to_number', '2061111111'])] },
    times: 2,
    overall: 'OVER_LIMIT',
    statuses: [{ code: 'OVER_LIMIT', remaining: 0 }, { code: 'OK', remaining: 94 }]
  },
  { say: 'ex2: to_number alone still has 95 left', req: { domain: 'messaging', descriptors: [d(['to_number', '2061111111'])] }, overall: 'OK', statuses: [{ code: 'OK', remaining: 94 }] },
  { say: 'ex2: another number has its own 5', req: { domain: 'messaging', descriptors: [d(['message_type', 'marketing'], ['to_number', '2062222222'])] }, overall: 'OK', statuses: [{ code: 'OK', remaining: 4 }] },
  // Example 3: key_value before key; requests_per_unit 0 blocks a value.
  { say: 'ex3: 50.0.0.1 gets 10/s', req: { domain: 'edge_proxy_per_ip', descriptors: [d(['remote_address', '50.0.0.1'])] }, overall: 'OK', statuses: [{ code: 'OK', remaining: 9, limit: SECOND(10) }] },
  { say: 'ex3: 50.0.0.5 is blocked', req: { domain: 'edge_proxy_per_ip', descriptors: [d(['remote_address', '50.0.0.5'])] }, overall: 'OVER_LIMIT', statuses: [{ code: 'OVER_LIMIT', remaining: 0, limit: SECOND(0) }] },
  { say: 'ex3: a blocked value refuses the question, and its other descriptors are not charged', req: { domain: 'edge_proxy_per_ip', descriptors: [d(['remote_address', '50.0.0.1']), d(['remote_address', '50.0.0.5'])] }, times: 3, overall: 'OVER_LIMIT', statuses: [{ code: 'OK', remaining: 8 }, { code: 'OVER_LIMIT', remaining: 0 }] },
  // Example 4: the request's depth must be the config's.
  { say: 'ex4: two entries do not meet a one-level limit', req: { domain: 'example4', descriptors: [d(['key', 'value'], ['subkey', 'subvalue'])] }, overall: 'OK', statuses: [{ code: 'OK', remaining: 0, limit: null }] },
  { say: 'ex4: they meet a two-level one', req: { domain: 'example4-deep', descriptors: [d(['key', 'value'], ['subkey', 'subvalue'])] }, overall: 'OK', statuses: [{ code: 'OK', remaining: 299, limit: SECOND(300) }] },
  // Example 5: unlimited answers OK with MaxUint32 remaining, without the store.
  { say: 'ex5: ldap is unlimited', req: { domain: 'internal', descriptors: [d(['ldap', 'x']), d(['azure', 'y'])] }, overall: 'OK', statuses: [{ code: 'OK', remaining: 4_294_967_295, limit: null }, { code: 'OK', remaining: 99, limit: { requests_per_unit: 100, unit: 'MINUTE' } }] },
  // Example 6: shadow_mode counts but never refuses.
  { say: 'ex6: user-a over its shadow limit stays OK', req: { domain: 'example6', descriptors: [d(['service', 'auth-service'], ['user', 'user-a'])] }, times: 12, overall: 'OK', statuses: [{ code: 'OK', remaining: 0, limit: SECOND(10) }] },
  { say: 'ex6: user-b is limited at 20/s', req: { domain: 'example6', descriptors: [d(['service', 'auth-service'], ['user', 'user-b'])] }, times: 21, overall: 'OVER_LIMIT', statuses: [{ code: 'OVER_LIMIT', remaining: 0, limit: SECOND(20) }] },
  // Example 7: replaces.
  { say: 'ex7: specific_limit alone is 5/s', req: { domain: 'example7', descriptors: [d(['key_1', 'value_1'], ['user', 'bkthomps'])] }, overall: 'OK', statuses: [{ code: 'OK', remaining: 4, limit: SECOND(5, 'specific_limit') }] },
  { say: 'ex7: with key_2 in the same question specific_limit stands down: 10/s', req: { domain: 'example7', descriptors: [d(['key_1', 'value_1'], ['user', 'bkthomps']), d(['key_2', 'value_2'], ['user', 'bkthomps'])] }, times: 7, overall: 'OK', statuses: [{ code: 'OK', remaining: 0, limit: null }, { code: 'OK', remaining: 3, limit: SECOND(10) }] },
  // Example 8: detailed_metric changes metrics only.
  { say: 'ex8: any key1 value 10/min', req: { domain: 'example8', descriptors: [d(['key1', 'unspecified_value'])] }, overall: 'OK', statuses: [{ code: 'OK', remaining: 9, limit: { requests_per_unit: 10, unit: 'MINUTE' } }] },
  { say: 'ex8: key1=value1 20/min', req: { domain: 'example8', descriptors: [d(['key1', 'value1'])] }, overall: 'OK', statuses: [{ code: 'OK', remaining: 19, limit: { requests_per_unit: 20, unit: 'MINUTE' } }] },
  // Example 9: a value prefix.
  { say: 'ex9: value_1 meets value*', req: { domain: 'example9', descriptors: [d(['key1', 'value_1'])] }, overall: 'OK', statuses: [{ code: 'OK', remaining: 19 }] },
  { say: 'ex9: each value its own counter', req: { domain: 'example9', descriptors: [d(['key1', 'value_2'])] }, overall: 'OK', statuses: [{ code: 'OK', remaining: 19 }] },
  { say: 'ex9: other meets nothing', req: { domain: 'example9', descriptors: [d(['key1', 'other'])] }, overall: 'OK', statuses: [{ code: 'OK', remaining: 0, limit: null }] },
  // hits_addend: the question's, and a descriptor's own.
  { say: 'hits_addend 3 takes 3', req: { domain: 'edge_proxy_per_ip', hits_addend: 3, descriptors: [d(['remote_address', '50.0.0.9'])] }, overall: 'OK', statuses: [{ code: 'OK', remaining: 7 }] },
  { say: 'a descriptor\'s hits_addend wins over the question\'s', req: { domain: 'edge_proxy_per_ip', hits_addend: 3, descriptors: [{ ...d(['remote_address', '50.0.0.9']), hits_addend: { value: 7 } }] }, overall: 'OK', statuses: [{ code: 'OK', remaining: 0 }] },
  { say: 'differing hits_addends: a call per addend', req: { domain: 'edge_proxy_per_ip', descriptors: [{ ...d(['remote_address', '50.0.0.8']), hits_addend: { value: 2 } }, d(['remote_address', '50.0.0.7'])] }, overall: 'OK', statuses: [{ code: 'OK', remaining: 8 }, { code: 'OK', remaining: 9 }] },
  { say: 'the earlier addend\'s refusal leaves the later one unasked', req: { domain: 'edge_proxy_per_ip', descriptors: [{ ...d(['remote_address', '50.0.0.8']), hits_addend: { value: 9 } }, d(['remote_address', '50.0.0.7'])] }, overall: 'OVER_LIMIT', statuses: [{ code: 'OVER_LIMIT', remaining: 0 }, { code: 'OK', remaining: 0 }] },
  // The descriptor's limit override.
  { say: 'a descriptor\'s own limit replaces the configured one', req: { domain: 'edge_proxy_per_ip', descriptors: [{ ...d(['remote_address', '50.0.0.5']), limit: { requests_per_unit: 2, unit: 'MINUTE' } }] }, times: 3, overall: 'OVER_LIMIT', statuses: [{ code: 'OVER_LIMIT', remaining: 0, limit: { name: '', requests_per_unit: 2, unit: 'MINUTE' } }] },
  // An unknown domain limits nothing.
  { say: 'unknown domain', req: { domain: 'nowhere', descriptors: [d(['a', 'b'])] }, overall: 'OK', statuses: [{ code: 'OK', remaining: 0, limit: null }] },
  // Ours: N-unit windows and token buckets.
  { say: 'ours: 2 per 5 minutes', req: { domain: 'ours', descriptors: [d(['five_minutes', 'x'])] }, times: 3, overall: 'OVER_LIMIT', statuses: [{ code: 'OVER_LIMIT', remaining: 0, limit: { requests_per_unit: 2, unit: 'MINUTE' } }], advanceMs: 4 * 60_000 },
  { say: 'ours: still over 4 minutes later (one window of 5)', req: { domain: 'ours', descriptors: [d(['five_minutes', 'x'])] }, overall: 'OVER_LIMIT', statuses: [{ code: 'OVER_LIMIT' }], advanceMs: 60_000 },
  { say: 'ours: the next 5-minute window', req: { domain: 'ours', descriptors: [d(['five_minutes', 'x'])] }, overall: 'OK', statuses: [{ code: 'OK', remaining: 1 }] },
  { say: 'ours: a token bucket of 2 at 1/s', req: { domain: 'ours', descriptors: [d(['bucket', 'x'])] }, times: 3, overall: 'OVER_LIMIT', statuses: [{ code: 'OVER_LIMIT' }], advanceMs: 1000 },
  { say: 'ours: a second later one token is back', req: { domain: 'ours', descriptors: [d(['bucket', 'x'])] }, overall: 'OK', statuses: [{ code: 'OK', remaining: 0 }] }
]

function check (t: Test, say: string, res: RlsResponse, step: Step): void {
  t.equal(res.overall_code, step.overall, `${say}: overall`)
  t.equal(res.statuses.length, step.statuses.length, `${say}: a status per descriptor`)
  step.statuses.forEach((want, i) => {
    const got: RlsStatus = res.statuses[i]!
    t.equal(got.code, want.code, `${say}: descriptor ${i} code`)
    if (want.remaining !== undefined) t.equal(got.limit_remaining ?? 0, want.remaining, `${say}: descriptor ${i} remaining`)
    if (want.limit === null) t.notOk(got.current_limit, `${say}: descriptor ${i} has no limit`)
    else if (want.limit !== undefined) t.match(got.current_limit, { name: want.limit.name ?? '', requests_per_unit: want.limit.requests_per_unit, unit: want.limit.unit }, `${say}: descriptor ${i} limit`)
  })
}

async function runTable (t: Test, clients: RlsClient[], clock: ManualClock): Promise<void> {
  let n = 0
  for (const step of TABLE) {
    let res: RlsResponse | undefined
    for (let i = 0; i < (step.times ?? 1); i++) res = await ask(clients[n++ % clients.length]!, step.req)
    check(t, step.say, res!, step)
    if (step.advanceMs !== undefined) clock.advance(step.advanceMs)
  }
}

t.test('golden table on the memory store', async t => {
  const clock = new ManualClock(START)
  const gw = await startGateway(t, { MODE: 'decision', RLS_PORT: '0', RLS_CONFIG: rlsConfigDir(t, CONFIG) }, { clock })
  await runTable(t, [rlsClient(t, gw.rlsAddress)], clock)
})

t.test('golden table on Redis, two instances answering in turn', async t => {
  const redis = await startRedis(t)
  const clock = new ManualClock(START)
  const env = { MODE: 'decision', RLS_PORT: '0', RLS_CONFIG: rlsConfigDir(t, CONFIG), STORE: 'redis', REDIS_URL: redis.url, ADMIN_TOKEN: TOKEN }
  const a = await startGateway(t, env, { clock, redisClock: clock })
  const b = await startGateway(t, env, { clock, redisClock: clock })
  const clients = [rlsClient(t, a.rlsAddress), rlsClient(t, b.rlsAddress)]
  await runTable(t, clients, clock)

  // The admin API of one instance acts on the counter and ban every instance answers from.
  const A = { authorization: `Bearer ${TOKEN}` }
  const which = 'domain=messaging&entry=message_type%3Dmarketing&entry=to_number%3D2061111111'
  const marketing = { domain: 'messaging', descriptors: [d(['message_type', 'marketing'], ['to_number', '2061111111'])] }
  t.equal((await ask(clients[1]!, marketing)).overall_code, 'OVER_LIMIT')
  t.equal((await send(`${a.adminUrl}/admin/rls/descriptor/limits?${which}`, { method: 'DELETE', headers: A })).status, 204)
  t.match(await ask(clients[1]!, marketing), { overall_code: 'OK', statuses: [{ limit_remaining: 4 }] }, 'reset on one instance, full on the other')
  t.equal((await send(`${a.adminUrl}/admin/rls/descriptor/ban?${which}`, { method: 'PUT', headers: { ...A, 'content-type': 'application/json' }, body: '{"duration":"1m"}' })).status, 204)
  t.match(await ask(clients[1]!, marketing), { overall_code: 'OVER_LIMIT', statuses: [{ duration_until_reset: { seconds: 60 } }] }, 'banned on one, refused by the other')
  t.match(JSON.parse((await send(`${b.adminUrl}/admin/rls/descriptor?${which}`, { headers: A })).body), { bannedMs: 60_000, limits: [{ remaining: 4 }] }, 'and the other inspects the same counter and ban')
})
