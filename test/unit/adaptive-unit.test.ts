import t from 'tap'
import { AdaptiveLimits, MAX_SAMPLES, QUIET_INTERVALS } from '../../src/control/adaptive.js'
import { captureLogs } from '../helpers/logs.js'

const SETTINGS = { latencyMs: 100, errorRate: 0.5, eventLoopDelayMs: 50, minFactor: 0.25, intervalMs: 3_600_000 }

t.test('each cause moves the factor: latency (beyond the sample reservoir), errors, a blocked event loop', async t => {
  const { logger, lines } = captureLogs()
  const factors: number[] = []
  const a = new AdaptiveLimits(SETTINGS, f => factors.push(f), logger)
  t.teardown(() => a.close())

  for (let i = 0; i < 3 * MAX_SAMPLES; i++) a.observe(i % 10 === 0 ? 10 : 500, false)
  a.tick()
  t.same(factors, [0.7], 'slow: down one step')
  t.match(lines.at(-1), { msg: 'adaptive limits: scaling limits down', factor: 0.7, was: 1, reasons: [/upstream p95 500 ms > 100 ms/] })

  for (let i = 0; i < 10; i++) a.observe(1, i < 6)
  a.tick()
  t.same(factors, [0.7, 0.49], 'failing: down again')
  t.match(lines.at(-1)!.reasons, [/upstream errors 60% > 50%/])

  for (let i = 0; i < 4; i++) a.observe(1000, true)
  a.tick()
  t.same(factors, [0.7, 0.49], 'too few responses to judge: the factor holds')
  for (let i = 0; i < 10; i++) a.observe(1, false)
  a.tick()
  t.same(factors, [0.7, 0.49, 0.59], 'healthy responses: up a step')

  // The lag sampler's timer, 200 ms late: the event loop was blocked that long.
  a.sampleLag(performance.now() + 200)
  a.tick()
  t.same(factors, [0.7, 0.49, 0.59, 0.413], 'a blocked event loop: down')
  t.match(lines.at(-1)!.reasons, [/event loop delay \d+ ms > 50 ms/])
  a.tick()
  t.equal(a.factor, 0.413, 'no responses at all: holds')
  for (let i = 0; i < 3; i++) {
    for (let k = 0; k < 10; k++) a.observe(1, false)
    a.tick()
  }
  t.equal(a.factor, 0.713, 'healthy: back up a step per interval')
})

t.test(`a quiet gateway recovers: ${QUIET_INTERVALS} unjudged intervals in a row with nothing bad seen go up a step`, async t => {
  const { logger, lines } = captureLogs()
  const a = new AdaptiveLimits(SETTINGS, () => {}, logger)
  t.teardown(() => a.close())
  for (let i = 0; i < 10; i++) a.observe(1, true)
  a.tick()
  a.observe(1, true)
  a.observe(1, true)
  for (let i = 0; i < 10; i++) a.observe(1, true)
  a.tick()
  t.equal(a.factor, 0.49, 'two failing intervals: down twice')

  const quietTicks = (n: number, each?: () => void) => { for (let i = 0; i < n; i++) { each?.(); a.tick() } }
  quietTicks(QUIET_INTERVALS - 1)
  t.equal(a.factor, 0.49, `${QUIET_INTERVALS - 1} quiet intervals: still holding`)
  quietTicks(1)
  t.equal(a.factor, 0.59, `the ${QUIET_INTERVALS}th: up a step`)
  t.match(lines.at(-1), { msg: 'adaptive limits: quiet, scaling limits up', factor: 0.59, was: 0.49 })

  // A few responses, too few to judge but slow, or failed: an upstream too slow to answer
  // much looks like this. The streak starts again each time; the factor never rises.
  quietTicks(3 * QUIET_INTERVALS, () => { a.observe(500, false) })
  t.equal(a.factor, 0.59, 'a slow response in each interval: holds')
  quietTicks(3 * QUIET_INTERVALS, () => { a.observe(1, true) })
  t.equal(a.factor, 0.59, 'a failed response in each interval: holds')
  quietTicks(QUIET_INTERVALS - 1)
  a.observe(500, false)
  quietTicks(1)
  quietTicks(QUIET_INTERVALS - 1)
  t.equal(a.factor, 0.59, 'one slow response breaks the streak')
  quietTicks(1)
  t.equal(a.factor, 0.69, 'then a full streak again: up')

  // A few fast, good responses count as quiet too (an idle gateway still gets some).
  quietTicks(QUIET_INTERVALS * 3, () => { a.observe(1, false) })
  t.equal(a.factor, 0.99, 'quiet with a little healthy traffic: up a step per streak')
  quietTicks(QUIET_INTERVALS * 2)
  t.equal(a.factor, 1, 'never above 1')
})
