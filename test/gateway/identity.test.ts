import t from 'tap'
import { ipKey } from '../../src/identity/ip.js'
import { apiKeyId } from '../../src/identity/identify.js'
import type { MemoryStore } from '../../src/store/memory.js'
import { startUpstream } from '../helpers/upstream.js'
import { startGateway } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'
import type { Teardown } from '../helpers/tap.js'

const IP_KEYS: Array<[string, number, string]> = [
  ['203.0.113.7', 64, '203.0.113.7'],
  ['::ffff:203.0.113.7', 64, '203.0.113.7'],
  ['::ffff:cb00:7107', 64, '203.0.113.7'],
  ['2001:db8:1:2:3:4:5:6', 64, '2001:db8:1:2::/64'],
  ['2001:db8:1:2:ffff:ffff:ffff:ffff', 64, '2001:db8:1:2::/64'],
  ['2001:db8:1:2:3:4:5:6', 48, '2001:db8:1::/48'],
  ['2001:db8:1:2:3:4:5:6', 56, '2001:db8:1::/56'],
  ['2001:db8:1:2ff:3:4:5:6', 56, '2001:db8:1:200::/56'],
  ['2001:db8::1', 128, '2001:db8::1/128'],
  ['::1', 64, '::/64'],
  ['not-an-address', 64, 'not-an-address'],
  ['zz::gg', 64, 'zz::gg']
]

t.test('address keys: IPv4 as is, mapped IPv6 folded, IPv6 by prefix', async t => {
  for (const [address, prefix, key] of IP_KEYS) t.equal(ipKey(address, prefix), key, `${address} /${prefix}`)
})

async function gateway (t: Teardown, env: Record<string, string>) {
  const upstream = await startUpstream(t)
  const gw = await startGateway(t, { UPSTREAM_URL: upstream.url, RATE_LIMIT_RATE: '1/h', RATE_LIMIT_BURST: '1', ...env })
  const store = gw.app.store as MemoryStore
  const tracked = (key: string) => store.peek(`default|${key}`) !== undefined
  return { gw, upstream, tracked }
}

t.test('clients are told apart by socket address', async t => {
  const { gw, tracked } = await gateway(t, {})
  t.equal((await send(`${gw.url}/ping`, { from: '127.0.0.2' })).status, 200)
  t.equal((await send(`${gw.url}/ping`, { from: '127.0.0.2' })).status, 429)
  t.equal((await send(`${gw.url}/ping`, { from: '127.0.0.3' })).status, 200, 'another address has its own bucket')
  t.ok(tracked('ip:127.0.0.2') && tracked('ip:127.0.0.3'))
})

t.test('X-Forwarded-For from an untrusted peer is ignored (spoofing buys nothing)', async t => {
  const { gw, tracked } = await gateway(t, {})
  t.equal((await send(`${gw.url}/ping`, { from: '127.0.0.2', headers: { 'x-forwarded-for': '198.51.100.1' } })).status, 200)
  t.equal((await send(`${gw.url}/ping`, { from: '127.0.0.2', headers: { 'x-forwarded-for': '198.51.100.2' } })).status, 429)
  t.ok(tracked('ip:127.0.0.2'))
  t.notOk(tracked('ip:198.51.100.1'))
})

t.test('behind a trusted proxy the right-most untrusted hop is the client', async t => {
  const { gw, tracked } = await gateway(t, { TRUST_PROXY: '127.0.0.2, 10.0.0.0/8' })
  const via = (xff: string) => send(`${gw.url}/ping`, { from: '127.0.0.2', headers: { 'x-forwarded-for': xff } })
  t.equal((await via('198.51.100.9, 203.0.113.5')).status, 200)
  t.ok(tracked('ip:203.0.113.5'))
  // The client can prepend anything: the hop the trusted proxy saw is what counts.
  t.equal((await via('192.0.2.1, 203.0.113.5')).status, 429)
  // Trusted hops (10/8) are skipped from the right.
  t.equal((await via('203.0.113.6, 10.1.2.3, 10.9.9.9')).status, 200)
  t.ok(tracked('ip:203.0.113.6'))
  t.equal((await via('203.0.113.6')).status, 429)
  // A peer not in TRUST_PROXY cannot use the header.
  t.equal((await send(`${gw.url}/ping`, { from: '127.0.0.3', headers: { 'x-forwarded-for': '203.0.113.77' } })).status, 200)
  t.ok(tracked('ip:127.0.0.3'))
  t.notOk(tracked('ip:203.0.113.77'))
})

t.test('IPv6 clients share a bucket per /64; a mapped IPv4 is the IPv4 client', async t => {
  const { gw, tracked } = await gateway(t, { TRUST_PROXY: '127.0.0.2' })
  const via = (xff: string) => send(`${gw.url}/ping`, { from: '127.0.0.2', headers: { 'x-forwarded-for': xff } })
  t.equal((await via('2001:db8:1:2::1')).status, 200)
  t.equal((await via('2001:db8:1:2:aaaa:bbbb:cccc:dddd')).status, 429, 'same /64, same bucket')
  t.equal((await via('2001:db8:1:3::1')).status, 200, 'another /64')
  t.ok(tracked('ip:2001:db8:1:2::/64') && tracked('ip:2001:db8:1:3::/64'))
  t.equal((await via('203.0.113.8')).status, 200)
  t.equal((await via('::ffff:203.0.113.8')).status, 429, 'mapped form is the same client')
})

t.test('IPV6_SUBNET widens the IPv6 key', async t => {
  const { gw, tracked } = await gateway(t, { TRUST_PROXY: '127.0.0.2', IPV6_SUBNET: '48' })
  const via = (xff: string) => send(`${gw.url}/ping`, { from: '127.0.0.2', headers: { 'x-forwarded-for': xff } })
  t.equal((await via('2001:db8:1:2::1')).status, 200)
  t.equal((await via('2001:db8:1:ffff::1')).status, 429)
  t.ok(tracked('ip:2001:db8:1::/48'))
})

t.test('a registered API key has its own bucket; unknown keys fall back to the IP', async t => {
  // (Tier "pro" has the same limit as the default here: this test is about identity.)
  const { gw } = await gateway(t, { API_KEYS: 'good-key:pro,other-key', RATE_LIMIT_TIERS: 'pro=1/h:1' })
  const store = gw.app.store as MemoryStore
  const tracked = (key: string) => store.peek(`pro|${key}`) !== undefined || store.peek(`default|${key}`) !== undefined
  const withKey = (key: string) => send(`${gw.url}/ping`, { from: '127.0.0.2', headers: { 'x-api-key': key } })
  t.equal((await withKey('good-key')).status, 200)
  t.equal((await withKey('good-key')).status, 429)
  t.equal((await withKey('other-key')).status, 200, 'another key, another bucket, same IP')
  t.ok(tracked(apiKeyId('good-key')) && tracked(apiKeyId('other-key')))
  t.notMatch(apiKeyId('good-key'), 'good-key', 'the key itself is not in the identity')
  // Made-up keys are all the same client: the IP.
  t.equal((await withKey('made-up-1')).status, 200)
  t.equal((await withKey('made-up-2')).status, 429)
  t.equal((await send(`${gw.url}/ping`, { from: '127.0.0.2' })).status, 429, 'and no key at all is that IP too')
  t.notOk(tracked(apiKeyId('made-up-1')))
})

t.test('a user id header from an auth layer names the client; absent or oversized, the IP does', async t => {
  const { gw, tracked } = await gateway(t, { RATE_LIMIT_KEY_BY: 'header:x-user-id,ip' })
  const asUser = (id: string) => send(`${gw.url}/ping`, { from: '127.0.0.2', headers: { 'x-user-id': id } })
  t.equal((await asUser('alice')).status, 200)
  t.equal((await asUser('alice')).status, 429)
  t.equal((await asUser('bob')).status, 200)
  t.ok(tracked('h:x-user-id:alice'))
  t.equal((await asUser('x'.repeat(300))).status, 200, 'oversized id: limited by IP instead')
  t.equal((await send(`${gw.url}/ping`, { from: '127.0.0.2' })).status, 429)
})

t.test('with ip first in RATE_LIMIT_KEY_BY, keys are not consulted', async t => {
  const { gw, tracked } = await gateway(t, { RATE_LIMIT_KEY_BY: 'ip,api-key', API_KEYS: 'good-key' })
  t.equal((await send(`${gw.url}/ping`, { from: '127.0.0.2', headers: { 'x-api-key': 'good-key' } })).status, 200)
  t.ok(tracked('ip:127.0.0.2'))
  t.notOk(tracked(apiKeyId('good-key')))
})
