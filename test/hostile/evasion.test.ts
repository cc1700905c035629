/**
 * Evasion: a client trying to look like many. Against the gateway process, each attempt
 * gets no more than one client's limit (burst 3 at 1/h).
 */
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { startUpstream } from '../helpers/upstream.js'
import { spawnGateway } from '../helpers/process.js'
import { send } from '../helpers/http.js'
import { startRedis } from '../helpers/redis.js'
import { Tally, writeFigures, WORKERS_ENV } from './harness.js'

const BURST = 3

t.test('evasion: forged addresses, one IPv6 /64, mapped IPv4, made-up and absurd API keys, header case', async t => {
  const redis = await startRedis(t)
  const upstream = await startUpstream(t)
  // The Redis store: keys built from client input must stay inert there too.
  const gw = await spawnGateway(t, { ...WORKERS_ENV,
    UPSTREAM_URL: upstream.url, STORE: 'redis', REDIS_URL: redis.url, REDIS_TIMEOUT_MS: '1000',
    RATE_LIMIT_RATE: '1/h', RATE_LIMIT_BURST: String(BURST), TRUST_PROXY: '127.0.0.10', API_KEYS: 'real-key-1,{braces}key'
  })
  const tally = new Tally()
  /** Sends the requests; returns how many were admitted. */
  async function attempt (name: string, requests: Array<Parameters<typeof send>[1]>): Promise<void> {
    let admitted = 0
    for (const opts of requests) {
      tally.sent++
      const r = await send(`${gw.url}/ping`, opts)
      tally.record(r.status)
      if (r.status === 200) admitted++
    }
    t.ok(admitted <= BURST, `${name}: ${admitted} of ${requests.length} admitted (limit ${BURST})`)
  }
  const hex = () => randomBytes(2).toString('hex')

  await attempt('random X-Forwarded-For from an untrusted peer', Array.from({ length: 50 }, () =>
    ({ from: '127.0.0.2', headers: { 'x-forwarded-for': `203.0.113.${Math.floor(Math.random() * 255)}` } })))
  await attempt('1,000 addresses of one IPv6 /64 (through the trusted proxy)', Array.from({ length: 1000 }, () =>
    ({ from: '127.0.0.10', headers: { 'x-forwarded-for': `2001:db8:5:6:${hex()}:${hex()}:${hex()}:${hex()}` } })))
  await attempt('an IPv4 address and its mapped IPv6 form', Array.from({ length: 20 }, (_, i) =>
    ({ from: '127.0.0.10', headers: { 'x-forwarded-for': i % 2 === 0 ? '198.51.100.7' : '::ffff:198.51.100.7' } })))
  await attempt('made-up API keys', Array.from({ length: 50 }, () =>
    ({ from: '127.0.0.3', headers: { 'x-api-key': `k-${randomBytes(8).toString('hex')}` } })))
  await attempt('empty and whitespace API keys', Array.from({ length: 20 }, (_, i) =>
    ({ from: '127.0.0.4', headers: { 'x-api-key': ['', ' ', '\t', '  x  '][i % 4]! } })))
  await attempt('a 64 KB API key', Array.from({ length: 10 }, () =>
    ({ from: '127.0.0.5', headers: { 'x-api-key': 'k'.repeat(64 * 1024) } })))
  await attempt('API keys that look like Redis syntax or hash tags', Array.from({ length: 40 }, (_, i) =>
    ({ from: '127.0.0.6', headers: { 'x-api-key': ['{x}', '*', 'KEYS *', '}{', '{braces}', 'FLUSHALL', '%7Bx%7D', 'rl:{*}:global'][i % 8]! } })))
  await attempt('a registered key in mixed-case header names', Array.from({ length: 10 }, (_, i) =>
    ({ from: `127.0.0.${20 + i}`, headers: { [['X-API-KEY', 'x-api-key', 'X-Api-Key'][i % 3]!]: 'real-key-1' } })))
  await attempt('a registered key with braces, from many addresses', Array.from({ length: 10 }, (_, i) =>
    ({ from: `127.0.0.${40 + i}`, headers: { 'x-api-key': '{braces}key' } })))

  const keys = await redis.admin.keys('*')

  t.ok(keys.every(k => /^rl:\{(ip:[0-9a-f.:/]+|key:[\w-]{22})\}:(default|ban-count|ban)$/.test(k)), `every Redis key is an address or a key digest in its own tag (${keys.length} keys)`)
  t.equal(gw.child.exitCode, null, 'no crash')
  const figures = writeFigures({
    scenario: 'evasion', sent: tally.sent, answered: tally.answered, lost: tally.sent - tally.total,
    upstream: upstream.total(), smuggled: upstream.total() - (tally.answered['2xx'] ?? 0), crashes: gw.child.exitCode === null ? 0 : 1, rssBytes: gw.rss(),
    notes: { clients: 9, limitPerClient: BURST, redisKeys: keys.length }
  })
  t.equal(figures.lost, 0)
  t.equal(figures.smuggled, 0, 'the upstream saw exactly the requests the gateway admitted')
  t.ok(figures.upstream <= 9 * BURST, `the upstream saw ${figures.upstream} requests: at most ${BURST} per real client`)
})
