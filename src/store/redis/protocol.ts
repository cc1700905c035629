/**
 * The one owner of the scripts' wire layout (STYLE 20): the KEYS and ARGV that
 * CONSUME_LUA, SETTLE_LUA and INSPECT_LUA read (documented beside each script in
 * scripts.ts) and the shape of their replies. Nothing else in the store writes or reads a
 * position.
 */
import type { BanSettings } from '../../config/index.js'
import { bannedDecision, concurrencyDecision, type Decision } from '../../core/decision.js'
import type { ConcurrencyLimit, Policy, SlotRequest } from '../../core/policy.js'
import { decide, type State } from '../../algorithms/index.js'
import type { ClientState } from '../types.js'
import type { UsageMark } from '../usage.js'
import { ALGORITHM_CODE, ARGS_PER_POLICY, CONSUME_SHA } from './scripts.js'

/** A stored state as the scripts write it: `tat`, `start count`, `start previous current`. */
export function parseState (raw: string): State | undefined {
  if (raw === '') return undefined
  const parts = raw.split(' ').map(Number)
  return parts.length === 1 ? parts[0] : parts
}

/**
 * A policy's six arguments to the scripts: algorithm, intervalMs, capacity, windowMs,
 * maxDelayMs, dry run. A fixed window over calendar periods is `c`, with the boundaries
 * of the periods around the gateway's `at` in intervalMs' place (Calendar.boundaries): the
 * script picks the one holding Redis TIME.
 */
export function policyArgs (p: Policy, at: number): string[] {
  const calendar = p.calendar
  if (calendar !== undefined) return ['c', calendar.boundaries(at), String(p.capacity), '0', '0', p.dryRun ? '1' : '0']
  return [ALGORITHM_CODE[p.algorithm], String(p.intervalMs), String(p.capacity), String(p.windowMs), String(p.maxDelayMs), p.dryRun ? '1' : '0']
}

/** The arguments of CONSUME_LUA and the other scripts for one store's settings. */
export class ScriptProtocol {
  /** ARGV[3..5]: the ban settings, as the script reads them. */
  private readonly banArgs: readonly string[]
  /** Each set of limits' ARGV, rendered once (the limits are built once per rules load). */
  private readonly policyArgs = new WeakMap<readonly Policy[], readonly string[]>()

  constructor (private readonly bans: BanSettings | undefined, private readonly leaseArg: string) {
    this.banArgs = [String(bans?.after ?? 0), String(bans?.windowMs ?? 0), String(bans?.durationMs ?? 0)]
  }

  /**
   * EVALSHA's arguments: the script, the keys, then ARGV as CONSUME_LUA documents it.
   * `clock` is ARGV[1] ('' for Redis TIME); `gatewayNow` places calendar boundaries.
   */
  consumeArgs (keys: string[], policies: readonly Policy[], cost: number, slots: SlotRequest | undefined, usage: UsageMark | undefined, clock: string, gatewayNow: number): string[] {
    let perPolicy = this.policyArgs.get(policies)
    if (perPolicy === undefined) {
      perPolicy = policies.flatMap(p => policyArgs(p, 0))
      this.policyArgs.set(policies, perPolicy)
    }
    const n = keys.length
    const m = slots === undefined ? 0 : slots.limits.length
    const args: string[] = new Array(9 + n + perPolicy.length + (m === 0 ? 0 : 2 + m))
    args[0] = CONSUME_SHA
    args[1] = String(n)
    for (let i = 0; i < n; i++) args[2 + i] = keys[i]!
    let a = 2 + n
    args[a++] = clock
    args[a++] = String(cost)
    args[a++] = this.banArgs[0]!
    args[a++] = this.banArgs[1]!
    args[a++] = this.banArgs[2]!
    args[a++] = String(m)
    args[a++] = usage === undefined ? '0' : String(usage.ttlMs)
    const first = a
    for (let i = 0; i < perPolicy.length; i++) args[a++] = perPolicy[i]!
    // A calendar period (a quota's month): the boundaries around the gateway's now, from
    // which the script picks the period holding Redis TIME (the same text all period long).
    for (let i = 0; i < policies.length; i++) {
      const calendar = policies[i]!.calendar
      if (calendar !== undefined) args[first + ARGS_PER_POLICY * i + 1] = calendar.boundaries(gatewayNow)
    }
    if (slots !== undefined) {
      args[a++] = slots.lease
      args[a++] = this.leaseArg
      for (const limit of slots.limits) args[a++] = String(limit.max)
    }
    return args
  }

  /**
   * Redis's reply to a decision (CONSUME_LUA's integers) as the limiter's decisions: {2, j}
   * in-flight limit j full, {1, µs} banned, else {0} and five integers per policy.
   */
  decisions (reply: number[], policies: readonly Policy[], slots: SlotRequest | undefined): Decision[] {
    if (reply[0] === 2) return concurrencyDecision(slots!.limits[reply[1]! - 1]!)
    if (reply[0] === 1) return bannedDecision(reply[1]! / 1000)
    const out: Decision[] = new Array(policies.length)
    for (let i = 0; i < policies.length; i++) {
      const r = 1 + 5 * i
      out[i] = {
        policy: policies[i]!,
        allowed: reply[r] === 1,
        remaining: reply[r + 1]!,
        resetMs: reply[r + 2]! / 1000,
        retryAfterMs: reply[r + 3]! / 1000,
        delayMs: reply[r + 4]! / 1000
      }
    }
    return out
  }

  /**
   * SETTLE_LUA's ARGV: the clock, how long ago the charge was (a duration by the gateway's
   * clock), then per key its policy's six arguments with the difference in the sixth place.
   */
  settleArgs (clock: string, agoMs: number): string[] {
    return [clock, String(Math.max(0, agoMs))]
  }

  /** Adds one key's policy and difference to SETTLE_LUA's ARGV; `at` places a calendar period. */
  pushSettle (args: string[], p: Policy, at: number, delta: number): void {
    const six = policyArgs(p, at)
    six[5] = String(delta)
    for (const arg of six) args.push(arg)
  }

  /** INSPECT_LUA's ARGV: the clock and how many of the last KEYS are in-flight limits. */
  inspectArgs (clock: string, slots: number): string[] {
    return [clock, String(slots)]
  }

  /** INSPECT_LUA's reply (now, each policy's raw state, the ban, the refusal count, each slot count) as the admin API's view. */
  clientState (reply: string[], policies: readonly Policy[], slots: readonly ConcurrencyLimit[]): ClientState {
    const now = Number(reply[0])
    const n = policies.length
    const until = Number(reply[n + 1] || 0)
    const count = parseState(reply[n + 2]!)
    return {
      limits: policies.map((policy, i) => {
        const state = parseState(reply[i + 1]!)
        const d = decide(policy, state, now, 0)
        return { policy: policy.name, algorithm: policy.algorithm, remaining: d.remaining, resetMs: Math.max(0, Math.ceil(d.resetMs)), state }
      }),
      bannedMs: until > now ? Math.ceil(until - now) : 0,
      refusals: Array.isArray(count) && this.bans !== undefined && now < count[0]! + this.bans.windowMs ? count[1]! : 0,
      inFlight: slots.map((limit, i) => ({ limit: limit.name, max: limit.max, inProgress: Number(reply[n + 3 + i]) }))
    }
  }
}
