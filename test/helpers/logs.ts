/** A pino logger whose lines are kept, parsed, for assertions. */
import { Writable } from 'node:stream'
import pino, { type Logger } from 'pino'

export function captureLogs (level = 'info'): { logger: Logger, lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = []
  const sink = new Writable({ write (chunk, _enc, cb) { lines.push(JSON.parse(chunk.toString())); cb() } })
  return { logger: pino({ level }, sink), lines }
}
