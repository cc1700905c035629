import t from 'tap'
import { createThrottledLog } from '../../src/log.js'

t.test('a repeating event logs at most once per interval, with the count it held back', async t => {
  const lines: Array<Record<string, unknown>> = []
  const log = { warn: (obj: Record<string, unknown>) => { lines.push(obj) } }
  let now = 0
  const throttled = createThrottledLog(log as never, 'warn', 'upstream down', 1000, () => now)
  for (let i = 0; i < 10_000; i++) { throttled(new Error('x')); now += 0.5 }
  // 10,000 calls over 5 s: one line per second.
  t.equal(lines.length, 5)
  t.equal(lines[0]!.suppressed, 0)
  t.equal(lines[1]!.suppressed, 1999)
  throttled(undefined, { code: 'E' })
  t.match(lines.at(-1), { code: 'E' })
})
