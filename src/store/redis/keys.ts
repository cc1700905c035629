/**
 * Where everything lives in Redis: `${prefix}{${client}}:${policy}` (and `:ban`,
 * `:ban-count`, `:usage:<day>`) — the {tag} puts all keys of one decision in one Redis
 * Cluster hash slot, spreading clients over the cluster. When one decision can mix
 * subjects (a shared global limit, route rules keyed by another identity source) every key
 * lives in one slot instead, `${prefix}{*}:${policy}:${subject}`: that slot carries the
 * traffic (as it must: the global bucket is one counter). The layout is fixed when the
 * store is built, so a key never moves.
 */
import type { ConcurrencyLimit, Policy, PolicyLabel } from '../../core/policy.js'

/** The channel the fleet's settings and forget announcements travel on. */
export function controlChannel (prefix: string): string {
  return `${prefix}control`
}

/**
 * How many resets and unbans the fleet has made (INCR after each): the settings sync
 * compares it every few seconds, so an instance that missed the announcement (its
 * subscription not made yet, or lost) still drops its local denials.
 */
export function forgetsKey (prefix: string): string {
  return `${prefix}{control}:forgets`
}

export function unescapeTag (subject: string): string {
  return subject.replace(/%7B/g, '{').replace(/%7D/g, '}')
}

export function escapeTag (subject: string): string {
  // A brace in a client-supplied id would end the hash tag early; keep tags unambiguous.
  return subject.indexOf('{') === -1 && subject.indexOf('}') === -1 ? subject : subject.replace(/\{/g, '%7B').replace(/\}/g, '%7D')
}

/** Whose limit policy `i` is: the subject given for it (tag-escaped), else the client's `c`. */
export function subjectOf (c: string, subjects: readonly string[] | undefined, i: number): string {
  return subjects === undefined ? c : escapeTag(subjects[i]!)
}

export class KeyLayout {
  /** The pattern every usage-ledger line matches (SCAN). */
  readonly usagePattern: string
  readonly controlChannel: string
  readonly forgetsKey: string

  constructor (private readonly prefix: string, readonly singleSlot: boolean) {
    this.usagePattern = `${prefix}*:usage:*`
    this.controlChannel = controlChannel(prefix)
    this.forgetsKey = forgetsKey(prefix)
  }

  /** One policy's key for a subject (tag-escaped), in the decision's slot. */
  keyOf (p: PolicyLabel, s: string): string {
    return this.singleSlot
      ? (p.shared ? `${this.prefix}{*}:${p.name}` : `${this.prefix}{*}:${p.name}:${s}`)
      : `${this.prefix}{${s}}:${p.name}`
  }

  /** The Redis keys of one decision, all in one hash slot; the client's ban keys last. */
  clientKeys (client: string, policies: readonly Policy[], subjects?: readonly string[]): string[] {
    const c = escapeTag(client)
    const keys = this.policyKeys(c, policies, subjects)
    this.pushBanKeys(keys, c)
    return keys
  }

  /** One key per policy (the client already escaped): all the deny cache needs. */
  policyKeys (c: string, policies: readonly Policy[], subjects: readonly string[] | undefined): string[] {
    const keys: string[] = new Array(policies.length)
    for (let i = 0; i < policies.length; i++) keys[i] = this.keyOf(policies[i]!, subjectOf(c, subjects, i))
    return keys
  }

  pushBanKeys (keys: string[], c: string): void {
    const [ban, count] = this.banKeys(c)
    keys.push(ban, count)
  }

  /** The client's ban and refusal-count keys (the client already escaped). */
  banKeys (c: string): [string, string] {
    return this.singleSlot
      ? [`${this.prefix}{*}:ban:${c}`, `${this.prefix}{*}:ban-count:${c}`]
      : [`${this.prefix}{${c}}:ban`, `${this.prefix}{${c}}:ban-count`]
  }

  /** The keys of a request's in-flight slots, in its decision's hash slot. */
  slotKeysOf (client: string, limits: readonly ConcurrencyLimit[], subjects: readonly string[] | undefined): string[] {
    const c = escapeTag(client)
    const out: string[] = new Array(limits.length)
    for (let i = 0; i < limits.length; i++) out[i] = this.keyOf(limits[i]!.policy, subjectOf(c, subjects, i))
    return out
  }

  /** A client's line in the usage ledger for a day (the client already escaped), in its decision's hash slot. */
  usageKey (c: string, day: string): string {
    return this.singleSlot ? `${this.prefix}{*}:usage:${day}:${c}` : `${this.prefix}{${c}}:usage:${day}`
  }

  /** Which client and day a ledger line's key is for (what usageKey() built). */
  lineOf (key: string): [client: string, day: string] | undefined {
    const single = `${this.prefix}{*}:usage:`
    if (key.startsWith(single)) return [unescapeTag(key.slice(single.length + 11)), key.slice(single.length, single.length + 10)]
    const m = /^\{(.*)\}:usage:(\d{4}-\d{2}-\d{2})$/.exec(key.slice(this.prefix.length))
    return m === null ? undefined : [unescapeTag(m[1]!), m[2]!]
  }

  /** The key a decision is routed by (its first; all its keys share one slot). */
  firstKey (client: string, policies: readonly Policy[], subjects?: readonly string[]): string {
    return this.keyOf(policies[0]!, subjectOf(escapeTag(client), subjects, 0))
  }
}
