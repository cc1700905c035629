/** RateLimit-Policy states the real long-run rate: q/w, with w whole seconds. */
import t from 'tap'
import { parseRate } from '../../src/core/rate.js'
import { makePolicy } from '../../src/core/policy.js'
import type { AlgorithmName } from '../../src/core/policy.js'

const CASES: Array<[AlgorithmName, string, number, string]> = [
  // algorithm, rate, burst, RateLimit-Policy item
  ['token-bucket', '2/s', 1, '"p";q=2;w=1'],
  ['leaky-bucket', '5/s', 1, '"p";q=5;w=1'],
  ['token-bucket', '10/s', 20, '"p";q=20;w=2'],
  ['token-bucket', '1/s', 5, '"p";q=5;w=5'],
  ['token-bucket', '2/s', 3, '"p";q=4;w=2'],
  ['token-bucket', '0.3/s', 1, '"p";q=3;w=10'],
  ['token-bucket', '7/m', 1, '"p";q=7;w=60'],
  ['token-bucket', '1/h', 5, '"p";q=5;w=18000'],
  ['token-bucket', '100000/s', 1, '"p";q=100000;w=1'],
  ['fixed-window', '100/d', 1, '"p";q=100;w=86400'],
  ['sliding-window', '5/m', 1, '"p";q=5;w=60']
]

t.test('q/w is the configured rate, w whole seconds', async t => {
  for (const [algorithm, rate, burst, item] of CASES) {
    const policy = makePolicy('p', { algorithm, rate: parseRate(rate), burst, maxDelayMs: 1000, dryRun: false })
    t.equal(policy.policyItem, item, `${algorithm} ${rate} burst ${burst}`)
    const [, q, w] = /q=(\d+);w=(\d+)/.exec(item)!
    const perSecond = parseRate(rate).count / (parseRate(rate).periodMs / 1000)
    t.ok(Math.abs(Number(q) / Number(w) - perSecond) < 1e-9 * perSecond, `${rate}: q/w = ${perSecond}/s`)
  }
})

t.test('a rate that no whole-second window holds whole requests of: rounded down, never more than the rate', async t => {
  const rate = parseRate('0.123457/s')
  const policy = makePolicy('p', { algorithm: 'token-bucket', rate, burst: 1, maxDelayMs: 1000, dryRun: false })
  t.equal(policy.policyItem, '"p";q=1;w=9', '0.123457/s: 9 s earn 1.11 requests; 1 is stated')
  t.ok(1 / 9 <= rate.count, 'q/w below the rate')
})
