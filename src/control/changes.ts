/**
 * Runtime settings changed through the admin API: validated, then put in force fleet-wide
 * through Redis when there is a fleet (STORE=redis), else here; and how the settings in
 * force read back (GET /admin/config).
 */
import type { FastifyBaseLogger } from 'fastify'
import type { Config } from '../config/index.js'
import { InvalidChangeError } from '../errors.js'
import type { LimitsManager } from './manager.js'
import type { RuntimeSettings } from './settings.js'
import type { SettingsSync } from './sync.js'

export interface SettingsControl {
  config: Config
  manager: LimitsManager
  /** With Redis: the fleet-wide settings sync. */
  sync: SettingsSync | undefined
  /** Counts an applied change (gateway_settings_changes_total). */
  counted: () => void
  log: FastifyBaseLogger
}

/**
 * Validates `settings`, then applies them; throws InvalidChangeError when they do not
 * validate, AdminWriteFailedError when the fleet cannot be told (then nothing changes
 * anywhere: instances must not drift apart). Resolves to the settings in force.
 */
export async function changeSettings (control: SettingsControl, settings: RuntimeSettings, actor: string): Promise<ReturnType<typeof describeSettings>> {
  const { manager, sync, log } = control
  try {
    manager.check(settings)
  } catch (err) {
    throw new InvalidChangeError((err as Error).message)
  }
  let version: number
  if (sync !== undefined) {
    // Redis unreachable or too slow: AdminWriteFailedError, and nothing changed anywhere.
    version = await sync.publish(settings, actor)
  } else {
    version = manager.version + 1
  }
  manager.apply(settings, version)
  control.counted()
  log.info({ actor, version, settings: shown(settings) }, 'runtime settings changed')
  return describeSettings(control)
}

/** The settings in force, as GET /admin/config shows them. */
export function describeSettings ({ config, manager, sync }: Pick<SettingsControl, 'config' | 'manager' | 'sync'>) {
  const eff = manager.effective
  const limit = (l: { rate: { text: string }, burst: number, quota?: { text: string } }) => ({ rate: l.rate.text, burst: l.burst, ...(l.quota === undefined ? {} : { quota: l.quota.text }) })
  const settings = manager.runtimeSettings
  return {
    version: manager.version,
    // With Redis: the fleet's stored version at the last check, and whether this
    // instance runs exactly those settings.
    fleet: sync?.status ?? null,
    algorithm: config.algorithm,
    dryRun: eff.limits.dryRun,
    factor: { emergency: settings.factor ?? 1, adaptive: manager.adaptive, effective: eff.factor },
    limits: {
      default: limit(eff.limits.limit),
      tiers: Object.fromEntries([...eff.limits.tiers].map(([name, t]) => [name, limit(t)])),
      global: eff.limits.globalLimit ? limit(eff.limits.globalLimit) : null,
      // In-flight limits: most requests in progress at once (null: none).
      concurrency: { perClient: eff.limits.concurrency.perClient ?? null, global: eff.limits.concurrency.global ?? null }
    },
    rulesSource: settings.rules !== undefined ? 'admin' : (config.rulesFile !== undefined ? 'file' : 'none'),
    rules: eff.rules.map(r => ({
      name: r.name,
      methods: r.methods ?? null,
      path: r.path,
      host: r.host ?? null,
      headers: r.headers === undefined ? null : Object.fromEntries(r.headers),
      claims: r.claims === undefined ? null : Object.fromEntries(r.claims),
      cost: r.cost,
      exclusive: r.exclusive,
      skip: r.skip,
      dryRun: r.dryRun,
      limits: r.limits.map(l => ({ name: l.name, algorithm: l.algorithm, ...limit(l), maxDelayMs: l.maxDelayMs })),
      concurrency: r.concurrency ?? null,
      count: r.count === undefined ? null : { status: r.count },
      refund: r.refund === undefined ? null : { status: r.refund },
      costHeader: r.costHeader ?? null
    })),
    settings: shown(settings)
  }
}

/** The settings as logs and GET /admin/config show them: the managed API keys counted, not listed (GET /admin/keys lists them). */
function shown (settings: RuntimeSettings): Omit<RuntimeSettings, 'apiKeys'> & { apiKeys?: number } {
  const { apiKeys, ...rest } = settings
  return apiKeys === undefined ? rest : { ...rest, apiKeys: Object.keys(apiKeys).length }
}
