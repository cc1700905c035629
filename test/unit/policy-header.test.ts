/** RateLimit-Policy states the real long-run rate: q/w, with w whole seconds. */
import t from 'tap'
import { parseRate, periodText } from '../../src/core/rate.js'
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
  ['sliding-window', '5/m', 1, '"p";q=5;w=60'],
  ['fixed-window', '100/5m', 1, '"p";q=100;w=300'],
  ['sliding-window', '1000/30s', 1, '"p";q=1000;w=30'],
  ['token-bucket', '5000/12h', 5000, '"p";q=5000;w=43200']
]

t.test('rates per several units: N/5m, their text, and what they are not', async t => {
  t.match(parseRate('100/5m'), { count: 100, periodMs: 300_000, text: '100/5m' })
  t.match(parseRate(' 1 / 2 s '), { count: 1, periodMs: 2000, text: '1/2s' })
  t.equal(parseRate('10/1d').calendar, 'day', 'N/1d is N/d: a calendar day')
  t.equal(parseRate('10/2d').calendar, undefined, 'N/2d is a window of 48 hours, not calendar days')
  t.equal(parseRate('10/1000d').periodMs, 1000 * 86_400_000)
  for (const bad of ['10/0m', '10/1001s', '10/5', '10/m5']) t.throws(() => parseRate(bad), /or per several units, N\/5m/, bad)
  t.throws(() => parseRate('1000000/5s'), /faster than the maximum of 100000\/s/)
  t.same(['s', '5m', 'h', '2h', '12h', 'd', 'w', '2w', 'mo', '90s'].map(p => periodText(parseRate(`1/${p}`).periodMs)), ['s', '5m', 'h', '2h', '12h', 'd', 'w', '2w', 'mo', '90s'])
})

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
