/**
 * RATE_LIMIT_RULES_FILE while the gateway runs: reloaded on demand (SIGHUP, the admin API)
 * and, with RULES_POLL_MS, whenever the file changes. A file that does not validate is
 * logged and counted, and the rules in force stay.
 */
import { readFileSync, unwatchFile, watchFile } from 'node:fs'
import type { FastifyBaseLogger } from 'fastify'
import type { Config } from '../config/index.js'
import { parseRules } from '../config/rules.js'
import type { LimitsManager } from './manager.js'

export interface RulesFileOptions {
  config: Config
  manager: LimitsManager
  /** Counts reloads by result (the metrics). */
  counted: (result: 'applied' | 'rejected') => void
  log: FastifyBaseLogger
}

/** What a reload did: applied new rules, found the file unchanged, rejected it (the rules in force stay), or had no file. */
export type ReloadResult = { result: 'applied', rules: number } | { result: 'unchanged' } | { result: 'rejected', reason: string } | { result: 'none' }

export class RulesFile {
  private text: string | undefined
  private readonly watched: string | undefined

  constructor (private readonly opts: RulesFileOptions) {
    const { config, log } = opts
    this.text = config.rulesText
    if (config.rulesFile !== undefined) log.info({ file: config.rulesFile, rules: config.rules.length }, 'route rules loaded')
    // Stat polling rather than inotify: it follows editors that replace the file, symlink
    // swaps (Kubernetes ConfigMaps) and bind mounts alike, for one stat per interval.
    this.watched = config.rateLimitEnabled && config.rulesPollMs > 0 ? config.rulesFile : undefined
    if (this.watched !== undefined) {
      // Called when the file's stat changes; reload() compares the content itself.
      watchFile(this.watched, { interval: config.rulesPollMs, persistent: false }, () => { this.reload() })
    }
  }

  /** Reads the file again and puts its rules in force; says what it did. */
  reload (): ReloadResult {
    const { config, manager, counted, log } = this.opts
    const file = config.rulesFile
    if (file === undefined) {
      log.warn('no RATE_LIMIT_RULES_FILE to reload')
      return { result: 'none' }
    }
    try {
      const text = readFileSync(file, 'utf8')
      if (text === this.text) return { result: 'unchanged' }
      const rules = parseRules(text, manager.rulesContext())
      manager.setFileRules(rules)
      this.text = text
      counted('applied')
      log.info({ file, rules: rules.length }, 'route rules reloaded')
      return { result: 'applied', rules: rules.length }
    } catch (err) {
      const reason = (err as Error).message
      counted('rejected')
      log.error({ file, reason }, 'route rules file rejected; the rules in force stay')
      return { result: 'rejected', reason }
    }
  }

  close (): void {
    if (this.watched !== undefined) unwatchFile(this.watched)
  }
}
