/**
 * Fixed-rate latency probe, in its own process: RATE requests/s for SECONDS over a few
 * keep-alive connections, each latency timed in microseconds; prints {p50, p99, errors} in
 * ms as JSON. Under a moderate fixed rate, latency is the work a request costs rather than
 * time spent queueing on a saturated machine, so the difference between two targets is
 * what the target adds. `node dist/bench/latency.js URL RATE SECONDS`
 */
import { Pool } from 'undici'

const [url, rate, seconds] = [new URL(process.argv[2]!), Number(process.argv[3]), Number(process.argv[4])]
const pool = new Pool(url.origin, { connections: 8 })
const latencies: number[] = []
let errors = 0
/** Requests sent first and not recorded: connections opened, both sides' code warmed up. */
const WARMUP = Math.round(rate)
const total = Math.round(rate * seconds) + WARMUP
const interval = 1000 / rate
const started = performance.now()
const inflight: Array<Promise<void>> = []

for (let i = 0; i < total; i++) {
  const due = started + i * interval
  const wait = due - performance.now()
  if (wait > 1) await new Promise(resolve => setTimeout(resolve, wait))
  const t0 = performance.now()
  const recorded = i >= WARMUP
  inflight.push(pool.request({ path: url.pathname, method: 'GET' }).then(async res => {
    await res.body.dump()
    if (recorded) latencies.push(performance.now() - t0)
  }, () => { errors++ }))
}
await Promise.all(inflight)
await pool.close()
latencies.sort((a, b) => a - b)
const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN
process.stdout.write(JSON.stringify({ p50: at(0.5), p99: at(0.99), errors, count: latencies.length }) + '\n')
