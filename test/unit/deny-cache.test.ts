/**
 * The deny cache on its own, as any shared store uses it: what the shared store refused
 * until an instant is answered locally until that instant, durations brought up to now;
 * nothing else is (admissions, dry runs, refundable limits, refusals while bans count).
 */
import t from 'tap'
import { ManualClock } from '../../src/core/clock.js'
import { bannedDecision, concurrencyDecision, type Decision } from '../../src/core/decision.js'
import { makeConcurrencyLimit, type Policy } from '../../src/core/policy.js'
import { DenyCache } from '../../src/store/deny-cache.js'
import { policy } from '../helpers/store-contract.js'

const perSecond = policy('2/s', 2)
const perMinute = policy('5/m', 5, 'm')

function refused (p: Policy, retryAfterMs: number): Decision {
  return { policy: p, allowed: false, remaining: 0, resetMs: retryAfterMs, retryAfterMs, delayMs: 0 }
}
function allowed (p: Policy): Decision {
  return { policy: p, allowed: true, remaining: 1, resetMs: 100, retryAfterMs: 0, delayMs: 0 }
}

t.test('a refusal is answered locally until its longest wait ends, shortened as time passes', async t => {
  const clock = new ManualClock()
  const cache = new DenyCache(clock)
  const policies = [perSecond, perMinute]
  const keys = ['k:s', 'k:m']
  t.equal(cache.answered('ip:a', keys, policies, 1, [refused(perSecond, 400), refused(perMinute, 9000)]), false, 'refused')
  t.equal(cache.size, 1, 'one denial, under the key of the longest refusal')
  clock.advance(1000)
  const again = cache.refusal('ip:a', keys, policies, 1)
  t.same(again?.map(d => d.retryAfterMs), [0, 8000], 'durations brought up to now')
  t.equal(cache.refusal('ip:a', keys, policies, 0), undefined, 'a cheaper request asks again')
  t.equal(cache.refusal('ip:a', ['k:s'], [perSecond], 1), undefined, 'another set of limits asks again')
  clock.advance(8000)
  t.equal(cache.refusal('ip:a', keys, policies, 1), undefined, 'gone when the wait ends')
  t.equal(cache.size, 0, 'and dropped')
})

t.test('admissions, dry runs, refundable limits and in-flight refusals are not remembered', async t => {
  const cache = new DenyCache(new ManualClock())
  const dry = { ...perMinute, dryRun: true }
  const refundable = { ...perMinute, refundable: true }
  t.equal(cache.answered('ip:a', ['k'], [perSecond], 1, [allowed(perSecond)]), true, 'admitted')
  t.equal(cache.answered('ip:a', ['k'], [dry], 1, [refused(dry, 5000)]), true, 'a dry run refuses nothing')
  t.equal(cache.answered('ip:a', ['k'], [refundable], 1, [refused(refundable, 5000)]), false, 'refused by a refundable limit')
  t.equal(cache.answered('ip:a', ['k'], [perSecond], 1, concurrencyDecision(makeConcurrencyLimit('conn', 1))), false, 'refused by an in-flight limit')
  t.equal(cache.size, 0, 'none of them is cached')
})

t.test('a ban is remembered for the client; with bans on, refusals are not', async t => {
  const clock = new ManualClock()
  const cache = new DenyCache(clock, true)
  t.equal(cache.answered('ip:a', ['k'], [perSecond], 1, [refused(perSecond, 500)]), false)
  t.equal(cache.size, 0, 'the refusal must reach the shared store to be counted')
  t.equal(cache.answered('ip:a', ['k'], [perSecond], 1, bannedDecision(3000)), false)
  clock.advance(1000)
  t.same(cache.refusal('ip:a', ['other'], [perMinute], 1), bannedDecision(2000), 'banned whatever the limits')
  t.equal(cache.refusal('ip:b', ['k'], [perSecond], 1), undefined, 'another client is not')
  cache.clear()
  t.equal(cache.refusal('ip:a', ['k'], [perSecond], 1), undefined, 'cleared after an unban')
})

t.test('a refund drops the denial of its key', async t => {
  const cache = new DenyCache(new ManualClock())
  cache.answered('ip:a', ['k'], [perSecond], 1, [refused(perSecond, 500)])
  cache.drop('other')
  t.equal(cache.size, 1, 'another key leaves it')
  cache.drop('k')
  t.equal(cache.refusal('ip:a', ['k'], [perSecond], 1), undefined, 'asks the shared store again')
})
