/**
 * A Prometheus histogram without labels, for what is observed on every request (decision
 * and upstream times). It registers with prom-client like prom-client's own and answers
 * the same get() (the text exposition, the JSON the worker threads' AggregatorRegistry
 * sums, `aggregator: 'sum'`), so nobody reading /metrics can tell the two apart.
 *
 * Written here because prom-client's observe() costs 140–180 ns (a closure and a label
 * hash per call, the bucket found by its bound as an object key): measured in a loop,
 * 5M observations, this VM, Node 24, 2026-12-06; two per proxied request. This one adds to
 * a typed array: 4–6 ns, measured alike.
 */
import type { MetricValueWithName, Registry } from 'prom-client'

export interface HistogramOptions {
  name: string
  help: string
  /** Upper bounds, ascending (+Inf is added). */
  buckets: readonly number[]
  registers: readonly Registry[]
}

export class Histogram {
  readonly name: string
  readonly help: string
  readonly type = 'histogram'
  readonly aggregator = 'sum'
  private readonly bounds: readonly number[]
  /** Observations per bucket, not cumulative; the last is above every bound. */
  private readonly counts: Float64Array
  private sum = 0
  private count = 0

  constructor (opts: HistogramOptions) {
    this.name = opts.name
    this.help = opts.help
    this.bounds = [...opts.buckets]
    this.counts = new Float64Array(this.bounds.length + 1)
    for (const registry of opts.registers) registry.registerMetric(this as never)
  }

  observe (value: number): void {
    const bounds = this.bounds
    let i = 0
    // prom-client's rule: the first bound the value is not above.
    while (i < bounds.length && value > bounds[i]!) i++
    this.counts[i]!++
    this.sum += value
    this.count++
  }

  get (): { name: string, help: string, type: 'histogram', values: Array<MetricValueWithName<string>>, aggregator: 'sum' } {
    const bucket = `${this.name}_bucket`
    const values: Array<MetricValueWithName<string>> = []
    let acc = 0
    for (let i = 0; i < this.bounds.length; i++) {
      acc += this.counts[i]!
      values.push({ labels: { le: this.bounds[i]! }, value: acc, metricName: bucket })
    }
    values.push(
      { labels: { le: '+Inf' }, value: this.count, metricName: bucket },
      { labels: {}, value: this.sum, metricName: `${this.name}_sum` },
      { labels: {}, value: this.count, metricName: `${this.name}_count` }
    )
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator }
  }

  reset (): void {
    this.counts.fill(0)
    this.sum = 0
    this.count = 0
  }
}
