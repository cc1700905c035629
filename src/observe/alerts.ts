/**
 * ALERT_WEBHOOK_URL: a JSON POST when a client is refused more than ALERT_THRESHOLD times
 * within ALERT_WINDOW, at most once per client per ALERT_COOLDOWN. Deliveries run in the
 * background, one at a time from a bounded queue, each retried a bounded number of times
 * with backoff: a slow or dead webhook never slows a request, and never grows memory.
 */
import type { FastifyBaseLogger } from 'fastify'
import { LRUCache } from 'lru-cache'
import type { AlertSettings } from '../config/index.js'
import type { Clock } from '../core/clock.js'
import { createThrottledLog } from '../log.js'

/** Attempts per alert, and the wait before the first retry (doubling). */
export const ATTEMPTS = 3
export const RETRY_BASE_MS = 500
export const DELIVERY_TIMEOUT_MS = 5_000
/** Alerts waiting for delivery at most; beyond, new ones are dropped (and counted). */
export const QUEUE_MAX = 100
/** Clients whose refusals are counted at most (least recently refused forgotten). */
export const TRACKED_MAX = 100_000

interface Track { windowStart: number, count: number, alertedAt: number, policies: Set<string> }

export interface AlertPayload {
  type: 'rate-limit-alert'
  client: string
  refusals: number
  windowMs: number
  threshold: number
  policies: string[]
  at: string
}

export class Alerts {
  private readonly tracks = new LRUCache<string, Track>({ max: TRACKED_MAX })
  private readonly queue: AlertPayload[] = []
  private sending = false
  private closed = false
  private readonly failed: ReturnType<typeof createThrottledLog>
  /** Alerts sent, given up after all attempts, and dropped because the queue was full. */
  readonly stats = { sent: 0, failed: 0, dropped: 0 }

  constructor (private readonly settings: AlertSettings, private readonly log: FastifyBaseLogger, private readonly clock: Clock) {
    this.failed = createThrottledLog(log, 'warn', 'alert webhook delivery failed')
  }

  /** Alerts queued or being delivered (0: the webhook has heard everything decided so far). */
  get pending (): number {
    return this.queue.length + (this.sending ? 1 : 0)
  }

  /** One refusal of `client` by `policy`. */
  record (client: string, policy: string): void {
    const now = this.clock.now()
    let t = this.tracks.get(client)
    if (t === undefined || now - t.windowStart >= this.settings.windowMs) {
      t = { windowStart: now, count: 0, alertedAt: t?.alertedAt ?? -Infinity, policies: new Set() }
      this.tracks.set(client, t)
    }
    t.count++
    t.policies.add(policy)
    if (t.count > this.settings.threshold && now - t.alertedAt >= this.settings.cooldownMs) {
      t.alertedAt = now
      this.enqueue({
        type: 'rate-limit-alert',
        client,
        refusals: t.count,
        windowMs: this.settings.windowMs,
        threshold: this.settings.threshold,
        policies: [...t.policies],
        at: new Date(now).toISOString()
      })
    }
  }

  private enqueue (payload: AlertPayload): void {
    if (this.queue.length >= QUEUE_MAX) {
      this.stats.dropped++
      return
    }
    this.queue.push(payload)
    if (!this.sending) void this.drain()
  }

  private async drain (): Promise<void> {
    this.sending = true
    while (this.queue.length > 0 && !this.closed) {
      const payload = this.queue.shift()!
      if (await this.deliver(payload)) this.stats.sent++
      else this.stats.failed++
    }
    this.sending = false
  }

  /** Up to ATTEMPTS tries; a 2xx answer is delivered. */
  private async deliver (payload: AlertPayload): Promise<boolean> {
    const body = JSON.stringify(payload)
    for (let attempt = 1; attempt <= ATTEMPTS && !this.closed; attempt++) {
      try {
        const res = await fetch(this.settings.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body,
          signal: AbortSignal.timeout(DELIVERY_TIMEOUT_MS)
        })
        await res.arrayBuffer()
        if (res.ok) return true
        this.failed(undefined, { status: res.status, attempt, client: payload.client })
      } catch (err) {
        this.failed(err, { attempt, client: payload.client })
      }
      if (attempt < ATTEMPTS) await new Promise(resolve => setTimeout(resolve, RETRY_BASE_MS * 2 ** (attempt - 1)).unref())
    }
    return false
  }

  close (): void {
    this.closed = true
    this.queue.length = 0
  }
}
