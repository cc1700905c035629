/**
 * Owns the limits in force: the environment, the rules file's rules, the settings changed
 * through the admin API and the adaptive factor. Any of them changing rebuilds the
 * selection (createLimits) and swaps it in whole: a request in flight keeps the limits it
 * started with, the next one sees the new ones.
 */
import type { Config, Rule, RulesContext } from '../config/index.js'
import { rulesContext } from '../config/index.js'
import { createLimits } from '../limiter/limits.js'
import type { LimitsHolder } from '../limiter/plugin.js'
import { resolve, type Effective, type RuntimeSettings } from './settings.js'
import type { ManagedKeys } from '../identity/identify.js'

export class LimitsManager {
  readonly holder: LimitsHolder
  /** The API keys made through the admin API, for identify(): swapped with the settings. */
  readonly keys: ManagedKeys
  private settings: RuntimeSettings = {}
  private fileRules: readonly Rule[]
  private adaptiveFactor = 1
  private current: Effective
  /** Version of the settings in force (0: none changed; with Redis, the fleet's version). */
  version = 0

  constructor (private readonly base: Config) {
    this.fileRules = base.rules
    this.current = resolve(base, this.fileRules, this.settings, 1)
    this.keys = { current: this.current.keys, seen: new Map() }
    this.holder = { current: createLimits(this.current.limits, this.current.rules, this.keys) }
  }

  /** Validates settings without applying them; throws an Error saying what is wrong. */
  check (settings: RuntimeSettings): void {
    resolve(this.base, this.fileRules, settings, this.adaptiveFactor)
  }

  /**
   * Puts settings in force. Throws (changing nothing) when they do not validate here, e.g.
   * settings from an instance whose environment defines other tiers.
   */
  apply (settings: RuntimeSettings, version: number): void {
    this.current = resolve(this.base, this.fileRules, settings, this.adaptiveFactor)
    this.settings = settings
    this.version = version
    this.keys.current = this.current.keys
    this.holder.current = createLimits(this.current.limits, this.current.rules, this.keys)
  }

  /** The rules file changed (validated against the limits in force). */
  setFileRules (rules: readonly Rule[]): void {
    this.fileRules = rules
    this.rebuild()
  }

  /** What a rules file is validated against: the limits in force, unscaled. */
  rulesContext (): RulesContext {
    const unscaled = resolve(this.base, [], { ...this.settings, rules: undefined, factor: 1 }, 1)
    return rulesContext(unscaled.limits)
  }

  /** Called by the adaptive controller when its factor moves. */
  setAdaptiveFactor (factor: number): void {
    this.adaptiveFactor = factor
    this.rebuild()
  }

  get adaptive (): number {
    return this.adaptiveFactor
  }

  /** The settings changed through the admin API (and not yet undone). */
  get runtimeSettings (): RuntimeSettings {
    return this.settings
  }

  get effective (): Effective {
    return this.current
  }

  /** Settings in force were valid against any rules file (they do not depend on it). */
  private rebuild (): void {
    this.current = resolve(this.base, this.fileRules, this.settings, this.adaptiveFactor)
    this.holder.current = createLimits(this.current.limits, this.current.rules, this.keys)
  }
}
