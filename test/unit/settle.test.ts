/**
 * settle() where the contract table's sequences do not reach: the states with nothing to
 * settle. Each answers undefined (write nothing), so the Lua twin's "no state" branches
 * match (the table runs every settlement against both stores).
 */
import t from 'tap'
import { settle } from '../../src/algorithms/settle.js'
import { parseCost } from '../../src/limiter/plugin.js'
import { ALIGNED, policy } from '../helpers/store-contract.js'

const bucket = policy('10/s', 3)
const fixed = policy('3/s', 3, 'f', 'fixed-window')
const sliding = policy('4/s', 4, 's', 'sliding-window')
const now = ALIGNED + 500

t.test('nothing to settle: a zero difference, a full bucket, an empty one', async t => {
  t.equal(settle(bucket, now + 100, now, now, 0), undefined, 'a difference of 0')
  t.equal(settle(bucket, undefined, now, now, -1), undefined, 'a bucket never charged: full already')
  t.equal(settle(bucket, now - 5, now, now, -1), undefined, 'a bucket refilled since: full already')
  t.equal(settle(bucket, now + 300, now, now, 2), undefined, 'an empty bucket takes no more')
  t.same(settle(bucket, [1, 2], now, now, 1), { state: now + 100, expiresAt: now + 100 }, 'a window\'s state under a bucket reads as none')
})

t.test('nothing to settle: fixed window', async t => {
  t.equal(settle(fixed, undefined, now, now, -1), undefined, 'no count')
  t.equal(settle(fixed, [ALIGNED, 0], now, now, -1), undefined, 'a count of 0')
  t.equal(settle(fixed, [ALIGNED - 1000, 2], now, now, -1), undefined, 'the count of another window')
  t.equal(settle(fixed, [ALIGNED, 3], now, now, 1), undefined, 'a full window takes no more')
  t.same(settle(fixed, 7, now, now, 1), { state: [ALIGNED, 1], expiresAt: ALIGNED + 1000 }, 'a bucket\'s state under a window reads as none')
  t.same(settle(fixed, [ALIGNED, 2], now, now, -5), { state: [ALIGNED, 0], expiresAt: ALIGNED + 1000 }, 'never below 0')
})

t.test('nothing to settle: sliding window', async t => {
  t.equal(settle(sliding, undefined, now, now, -1), undefined, 'no counts')
  t.equal(settle(sliding, [ALIGNED, 2, 0], now, now, -1), undefined, 'the charge\'s window counts 0')
  t.equal(settle(sliding, [ALIGNED + 1000, 0, 2], now + 1000, now, -1), undefined, 'rolled once, and the previous window counts 0')
  t.equal(settle(sliding, [ALIGNED + 2000, 3, 2], now + 2000, now, -1), undefined, 'rolled twice: nothing of the charge is left')
  t.equal(settle(sliding, [ALIGNED, 0, 4], now, now, 1), undefined, 'a full window takes no more')
  t.same(settle(sliding, [ALIGNED - 1000, 0, 4], now, now, 1), { state: [ALIGNED, 4, 1], expiresAt: ALIGNED + 2000 }, 'a state of the window before is the previous count')
  t.same(settle(sliding, [ALIGNED, 1, 1], now, now, -3), { state: [ALIGNED, 1, 0], expiresAt: ALIGNED + 2000 }, 'never below 0')
})

t.test('a reported cost: a whole number from 0 to 1000000, spaces around it allowed', async t => {
  t.same(['0', ' 50 ', '1000000'].map(parseCost), [0, 50, 1_000_000])
  t.same(['', 'abc', '-5', '1.5', '1e3', '0x10', '５'].map(parseCost), [-1, -1, -1, -1, -1, -1, -1], 'not a whole number: invalid')
  t.same(['1000001', '99999999999'].map(parseCost), [-2, -2], 'too large')
  t.equal(parseCost('1'.repeat(17)), -1, 'past 16 digits: not read as a number at all')
})
