/**
 * Logging helpers. The hot path never logs per request at info level; events that can
 * repeat per request (upstream down, store failing) go through a throttle that writes at
 * most one line per interval with the count of what it held back.
 */
import type { FastifyBaseLogger } from 'fastify'
import type { LoggerOptions } from 'pino'

export const DEFAULT_LOG_THROTTLE_MS = 5_000

/** pino options: secrets redacted, as every log line may end up in a shared system. */
export function loggerOptions (level: string, apiKeyHeader: string): LoggerOptions {
  return {
    level,
    redact: {
      paths: [
        'req.headers.authorization',
        'req.headers.cookie',
        `req.headers["${apiKeyHeader}"]`,
        'headers.authorization',
        `headers["${apiKeyHeader}"]`
      ],
      censor: '[redacted]'
    }
  }
}

/**
 * Returns a function that logs `msg` at `level` at most once per `intervalMs`, adding how
 * many calls were suppressed since the last line.
 */
export function createThrottledLog (log: FastifyBaseLogger, level: 'warn' | 'error', msg: string, intervalMs = DEFAULT_LOG_THROTTLE_MS, now: () => number = Date.now) {
  let last = -Infinity
  let suppressed = 0
  return function throttled (err?: unknown, extra?: Record<string, unknown>): void {
    const t = now()
    if (t - last < intervalMs) {
      suppressed++
      return
    }
    last = t
    log[level]({ err, suppressed, ...extra }, msg)
    suppressed = 0
  }
}
