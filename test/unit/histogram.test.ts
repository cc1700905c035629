import t from 'tap'
import { AggregatorRegistry, Histogram as PromHistogram, Registry } from 'prom-client'
import { Histogram } from '../../src/observe/histogram.js'

const BUCKETS = [0.00005, 0.001, 0.25, 1]
const VALUES = [0, 0.00005, 0.00004, 0.0002, 0.001, 0.0011, 0.25, 0.9, 1, 1.5, 30]

/** Ours and prom-client's, the same name and buckets, each in a registry of its own, fed `values`. */
function both (values: readonly number[]): { ours: Registry, theirs: Registry, histogram: Histogram } {
  const ours = new Registry()
  const theirs = new Registry()
  const histogram = new Histogram({ name: 'x_seconds', help: 'Time to do x', buckets: BUCKETS, registers: [ours] })
  const reference = new PromHistogram({ name: 'x_seconds', help: 'Time to do x', buckets: BUCKETS, registers: [theirs] })
  for (const v of values) {
    histogram.observe(v)
    reference.observe(v)
  }
  return { ours, theirs, histogram }
}

t.test("/metrics reads as prom-client's histogram would: buckets (a value on a bound counts in it), +Inf, sum, count", async t => {
  const { ours, theirs } = both(VALUES)
  const text = await ours.metrics()
  t.equal(text, await theirs.metrics())
  t.match(text, /x_seconds_bucket\{le="0.001"\} 5\n/)
  t.match(text, /x_seconds_bucket\{le="\+Inf"\} 11\n/)
  // The JSON (what a worker thread sends the main thread) by what prom-client reads of it.
  const read = async (r: Registry): Promise<unknown> => (await r.getMetricsAsJSON()).map(m => ({ ...m, values: m.values.map(v => ({ labels: v.labels, value: v.value, metricName: (v as { metricName?: string }).metricName })) }))
  t.same(await read(ours), await read(theirs))
})

t.test('nothing observed: every bucket at 0, as prom-client shows it', async t => {
  const { ours, theirs } = both([])
  t.equal(await ours.metrics(), await theirs.metrics())
})

t.test("worker threads' metrics summed by prom-client's AggregatorRegistry alike", async t => {
  const a = both(VALUES)
  const b = both([0.5, 2])
  const summed = AggregatorRegistry.aggregate([await a.ours.getMetricsAsJSON(), await b.ours.getMetricsAsJSON()] as never)
  const reference = AggregatorRegistry.aggregate([await a.theirs.getMetricsAsJSON(), await b.theirs.getMetricsAsJSON()] as never)
  t.equal(await summed.metrics(), await reference.metrics())
  t.match(await summed.metrics(), /x_seconds_count 13\n/)
})

t.test('reset starts again from nothing', async t => {
  const { ours, histogram } = both(VALUES)
  histogram.reset()
  histogram.observe(0.3)
  const { theirs } = both([0.3])
  t.equal(await ours.metrics(), await theirs.metrics())
})
