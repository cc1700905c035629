import t from 'tap'
import { mostRestrictive, type Decision } from '../../src/core/decision.js'
import { policy } from '../helpers/store-contract.js'

const d = (name: string, allowed: boolean, remaining: number, resetMs: number, retryAfterMs: number): Decision =>
  ({ policy: policy("1/s", 10, name), allowed, remaining, resetMs, retryAfterMs, delayMs: 0 })

// [case, decisions, name of the one that must speak for the request]
const CASES: Array<[string, Decision[], string]> = [
  ['one policy', [d('a', true, 3, 100, 0)], 'a'],
  ['fewest remaining among allowed', [d('a', true, 3, 100, 0), d('b', true, 1, 100, 0)], 'b'],
  ['equal remaining: the later reset', [d('a', true, 1, 100, 0), d('b', true, 1, 900, 0)], 'b'],
  ['equal remaining, earlier reset second: keep the first', [d('a', true, 1, 900, 0), d('b', true, 1, 100, 0)], 'a'],
  ['a rejection beats any allowance', [d('a', true, 0, 100, 0), d('b', false, 5, 100, 50)], 'b'],
  ['an allowance never replaces a rejection', [d('a', false, 0, 100, 50), d('b', true, 0, 100, 0)], 'a'],
  ['of two rejections, the longer wait', [d('a', false, 0, 100, 50), d('b', false, 0, 100, 5000)], 'b'],
  ['of two rejections, the longer wait even when first', [d('a', false, 0, 100, 5000), d('b', false, 0, 100, 50)], 'a']
]

t.test('the decision that speaks for the request', async t => {
  for (const [name, decisions, expected] of CASES) t.equal(mostRestrictive(decisions).policy.name, expected, name)
})
