import t from 'tap'
import { Readable } from 'node:stream'
import { request } from 'undici'
import { startUpstream } from '../helpers/upstream.js'
import { spawnGateway } from '../helpers/process.js'

const MiB = 1024 * 1024
const UPLOAD = 1024 * MiB
const DOWNLOAD = 512 * MiB
/**
 * Growth of the gateway's own RSS from before to after 1.5 GiB pass through it. Buffering
 * either body would show 512 MiB or more. Node 20 measures −1 to +3 MiB; Node 24 grows its
 * heap lazily, in steps: +15 to +24 MiB over one 1.5 GiB pass in CI, then flat over more
 * passes (+6, +4, +2, +0 MiB in a row alone), so the bound leaves room for one such step.
 */
const RSS_STEADY_GROWTH_LIMIT = 40 * MiB
/** Highest RSS while streaming, above the baseline (garbage awaiting GC included). */
const RSS_PEAK_GROWTH_LIMIT = 64 * MiB

function generated (total: number): Readable {
  const chunk = Buffer.alloc(64 * 1024, 0x62)
  let left = total
  return new Readable({
    read () {
      if (left <= 0) { this.push(null); return }
      const n = Math.min(left, chunk.length)
      left -= n
      this.push(n === chunk.length ? chunk : chunk.subarray(0, n))
    }
  })
}

t.test('a 1 GiB upload and a 512 MiB download stream through without buffering', async t => {
  const upstream = await startUpstream(t)
  const gw = await spawnGateway(t, { UPSTREAM_URL: upstream.url })
  // Warm up both directions first, twice at full size: the first bodies through a fresh
  // process grow its heap and buffer pools (measured: ~50 MiB on Node 20 within the first
  // tens of MiB, then flat; Node 24 keeps growing a little longer, +6, +4, +2, +0 MiB over
  // successive 1.5 GiB, converging: no leak, a lazier heap). What must not happen is
  // growth with the body size, so the baseline is the warmed-up process.
  for (let i = 0; i < 2; i++) {
    await (await request(`${gw.url}/upload`, { method: 'POST', body: generated(UPLOAD) })).body.dump()
    await (await request(`${gw.url}/big?bytes=${DOWNLOAD}`)).body.dump()
  }
  const before = gw.rss()
  let peak = before
  const sampler = setInterval(() => { peak = Math.max(peak, gw.rss()) }, 20)
  t.teardown(() => clearInterval(sampler))

  const up = await request(`${gw.url}/upload`, { method: 'POST', body: generated(UPLOAD), headers: { 'content-type': 'application/octet-stream' } })
  t.equal(up.statusCode, 200)
  t.same(await up.body.json(), { bytes: UPLOAD }, 'every byte arrived upstream')

  const down = await request(`${gw.url}/big?bytes=${DOWNLOAD}`)
  t.equal(down.statusCode, 200)
  let received = 0
  for await (const chunk of down.body) received += (chunk as Buffer).length
  t.equal(received, DOWNLOAD, 'every byte came back')

  clearInterval(sampler)
  const steady = gw.rss() - before
  const burst = peak - before
  t.ok(steady < RSS_STEADY_GROWTH_LIMIT, `gateway RSS after 1.5 GiB: +${(steady / MiB).toFixed(1)} MiB (limit ${RSS_STEADY_GROWTH_LIMIT / MiB} MiB)`)
  t.ok(burst < RSS_PEAK_GROWTH_LIMIT, `gateway RSS peak while streaming: +${(burst / MiB).toFixed(1)} MiB (limit ${RSS_PEAK_GROWTH_LIMIT / MiB} MiB)`)
})
