/**
 * Parsers for the structured values that live in environment variables. Each throws a
 * plain Error whose message says what the value should look like; config/index.ts adds
 * the variable's name.
 */
import { isIP } from 'node:net'
import proxyAddr from 'proxy-addr'
import { parseRate, type RateSpec } from '../core/rate.js'

/** Splits a comma (or newline) separated list, trimming and dropping empty items. */
export function splitList (text: string): string[] {
  return text.split(/[,\n]/).map(s => s.trim()).filter(s => s.length > 0 && !s.startsWith('#'))
}

export type KeySource =
  | { readonly kind: 'ip' }
  | { readonly kind: 'api-key' }
  | { readonly kind: 'header', readonly name: string }
  | { readonly kind: 'jwt', readonly claim: string }
  | { readonly kind: 'global' }

/** A claim's name (`sub`, `org_id`, `https://example.com/tenant`). */
export const CLAIM_RE = /^[A-Za-z0-9_.:/-]{1,128}$/

const HEADER_NAME_RE = /^[!#$%&'*+.^_`|~0-9a-z-]+$/

/** A header name (RFC 9110 token), lower-cased as Node presents request headers. */
export function parseHeaderName (text: string): string {
  const name = text.trim().toLowerCase()
  if (!HEADER_NAME_RE.test(name)) throw new Error(`"${text}" is not a valid header name`)
  return name
}
export const KEY_BY_FORMAT = 'a comma-separated list of ip, api-key, header:<name>, jwt:<claim>, global'

export function parseKeyBy (text: string): KeySource[] {
  const items = splitList(text)
  if (items.length === 0) throw new Error(`expected ${KEY_BY_FORMAT}, got an empty list`)
  const seen = new Set<string>()
  return items.map(item => {
    const lower = item.toLowerCase()
    if (seen.has(lower)) throw new Error(`"${item}" is listed twice`)
    seen.add(lower)
    if (lower === 'ip') return { kind: 'ip' } as const
    if (lower === 'api-key') return { kind: 'api-key' } as const
    if (lower === 'global') return { kind: 'global' } as const
    if (lower.startsWith('header:')) {
      return { kind: 'header', name: parseHeaderName(item.slice('header:'.length)) } as const
    }
    if (lower.startsWith('jwt:')) {
      const claim = item.slice('jwt:'.length).trim()
      if (!CLAIM_RE.test(claim)) throw new Error(`"${item}": a claim name is letters, digits and _ . : / - (e.g. jwt:sub)`)
      return { kind: 'jwt', claim } as const
    }
    throw new Error(`unknown identity source "${item}": expected ${KEY_BY_FORMAT}`)
  })
}

const TIER_RE = /^[A-Za-z0-9_-]{1,64}$/
const KEY_RE = /^[\x21-\x7e]{1,512}$/

/**
 * API keys: `key[:tier]` items separated by commas or newlines (`#` starts a comment line
 * in a file). Keys are printable ASCII without spaces, at most 512 characters.
 */
export function parseApiKeys (text: string, into = new Map<string, string | undefined>()): Map<string, string | undefined> {
  for (const item of splitList(text)) {
    const colon = item.lastIndexOf(':')
    const key = colon === -1 ? item : item.slice(0, colon)
    const tier = colon === -1 ? undefined : item.slice(colon + 1)
    if (!KEY_RE.test(key)) throw new Error('an API key must be 1-512 printable ASCII characters without spaces')
    if (tier !== undefined && !TIER_RE.test(tier)) throw new Error(`tier "${tier}" must be 1-64 letters, digits, _ or -`)
    if (into.has(key)) throw new Error('an API key is listed twice')
    into.set(key, tier)
  }
  return into
}

export const TRUST_PROXY_FORMAT = 'a comma-separated list of IP addresses or CIDRs (or loopback, linklocal, uniquelocal)'

/** Trusted proxies for X-Forwarded-For, validated by proxy-addr itself. */
export function parseTrustProxy (text: string): string[] {
  const items = splitList(text)
  for (const item of items) {
    if (/^(true|false|\*|all|yes)$/i.test(item)) {
      throw new Error(`"${item}" would trust every peer, letting any client pick its own address by sending X-Forwarded-For; list the proxies in front of the gateway instead (${TRUST_PROXY_FORMAT})`)
    }
    try {
      proxyAddr.compile(item)
    } catch (err) {
      throw new Error(`"${item}" is not ${TRUST_PROXY_FORMAT}: ${(err as Error).message}`)
    }
  }
  return items
}

/** A URL with one of two schemes (`['http', 'https']`), or an error saying which were expected. */
function parseUrl (text: string, [a, b]: [string, string]): URL {
  const expected = `expected a URL starting with ${a}:// or ${b}://`
  let url: URL
  try {
    url = new URL(text)
  } catch {
    throw new Error(`${expected}, got "${text}"`)
  }
  if (url.protocol !== `${a}:` && url.protocol !== `${b}:`) throw new Error(`${expected}, got protocol "${url.protocol}"`)
  return url
}

export function parseUpstreamUrl (text: string): string {
  const url = parseUrl(text, ['http', 'https'])
  if (url.search !== '' || url.hash !== '') throw new Error('the URL must not carry a query string or fragment')
  if (url.username !== '' || url.password !== '') throw new Error('the URL must not carry credentials')
  return url.href.replace(/\/$/, '')
}

export function parseWebhookUrl (text: string): string {
  const url = parseUrl(text, ['http', 'https'])
  return url.href
}

export interface HostPort {
  readonly host: string
  readonly port: number
}

/** `host:port` items (IPv6 as `[::1]:6379`), comma-separated. */
export function parseHostPorts (text: string): HostPort[] {
  return splitList(text).map(item => {
    const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s[\]]+)):(\d{1,5})$/.exec(item)
    const port = Number(m?.[3])
    if (m === null || port < 1 || port > 65535) throw new Error(`expected host:port items, comma-separated; got "${item}"`)
    return { host: m[1] ?? m[2]!, port }
  })
}

export function parseRedisUrl (text: string): string {
  const url = parseUrl(text, ['redis', 'rediss'])
  const db = url.pathname.replace(/^\//, '')
  if (db !== '' && !/^\d{1,2}$/.test(db)) throw new Error(`the database in the path must be a number, got "${db}"`)
  return text
}

export interface TierSpec {
  readonly rate: RateSpec
  readonly burst: number
  readonly quota?: RateSpec
}

/**
 * Names a tier or a rule's limit must not take: the built-in limits' (it would share
 * their counters) and the names of a client's ban keys (ban, ban-count).
 */
export const RESERVED_POLICY_NAMES: ReadonlySet<string> = new Set(['default', 'global', 'ban', 'ban-count', 'concurrency', 'global-concurrency', 'quota'])

const TIER_ITEM_RE = /^([A-Za-z0-9_-]{1,64})\s*=\s*([^:+]+):\s*(\d+)(?:\s*\+\s*(\S+))?$/
export const TIERS_FORMAT = 'name=RATE:BURST items, each with an optional +QUOTA, comma-separated (e.g. free=10/s:20+10000/mo,pro=100/s:200)'

/**
 * A quota: whole requests per period, counted in calendar periods for `d`, `w` and `mo`
 * (RATE_LIMIT_QUOTA, a tier's `+10000/mo`).
 */
export function parseQuota (text: string): RateSpec {
  const quota = parseRate(text)
  if (quota.calendar === undefined) throw new Error(`a quota counts requests per calendar period: N/d, N/w or N/mo, not "${quota.text}" (a rate per second, minute or hour is a limit's RATE)`)
  if (!Number.isInteger(quota.count)) throw new Error(`a quota counts whole requests; "${quota.text}" is not a whole number`)
  return quota
}

/** Named tiers with their own limit and, optionally, a quota: `free=10/s:20+10000/mo,pro=100/s:200`. */
export function parseTiers (text: string): Map<string, TierSpec> {
  const tiers = new Map<string, TierSpec>()
  for (const item of splitList(text)) {
    const m = TIER_ITEM_RE.exec(item)
    if (m === null) throw new Error(`expected ${TIERS_FORMAT}, got "${item}"`)
    const burst = Number(m[3])
    if (!(burst >= 1 && burst <= 1_000_000_000)) throw new Error(`tier "${m[1]}": the burst must be a whole number from 1 to 1000000000`)
    if (tiers.has(m[1]!)) throw new Error(`tier "${m[1]}" is defined twice`)
    if (RESERVED_POLICY_NAMES.has(m[1]!)) throw new Error(`"${m[1]}" is the name of a built-in limit; choose another tier name`)
    let quota: RateSpec | undefined
    if (m[4] !== undefined) {
      try {
        quota = parseQuota(m[4])
      } catch (err) {
        throw new Error(`tier "${m[1]}": quota: ${(err as Error).message}`)
      }
    }
    const rate = parseRate(m[2]!.trim())
    tiers.set(m[1]!, quota === undefined ? { rate, burst } : { rate, burst, quota })
  }
  return tiers
}

/** The name of a client limit's quota: `quota` for the default limit's, `<tier>-quota` for a tier's. */
export function quotaName (tier: string | undefined): string {
  return tier === undefined ? 'quota' : `${tier}-quota`
}

export interface Allowlist {
  /** Addresses and CIDRs (v4 and v6), as proxy-addr accepts them. */
  readonly networks: readonly string[]
  /** API keys (the `key:` items, without the prefix). */
  readonly keys: ReadonlySet<string>
}

export const ALLOWLIST_FORMAT = 'IP addresses, CIDRs and key:<api-key> items, comma-separated'

/** Clients that are never limited nor counted: `10.0.0.0/8,2001:db8::/32,key:internal-1`. */
export function parseAllowlist (text: string): Allowlist {
  const networks: string[] = []
  const keys = new Set<string>()
  for (const item of splitList(text)) {
    if (item.startsWith('key:')) {
      const key = item.slice(4)
      if (!KEY_RE.test(key)) throw new Error(`"${item}": an API key must be 1-512 printable ASCII characters without spaces`)
      keys.add(key)
      continue
    }
    try {
      proxyAddr.compile(item)
    } catch {
      throw new Error(`"${item}" is neither an IP address, a CIDR nor key:<api-key> (expected ${ALLOWLIST_FORMAT})`)
    }
    networks.push(item)
  }
  return { networks, keys }
}

const DURATION_UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }
export const DURATION_FORMAT = 'a whole number with a unit: ms, s, m, h or d (e.g. 30s, 15m, 1h)'

/** A duration such as `15m`, in milliseconds (at least 1 ms, at most 365 days). */
export function parseDuration (text: string): number {
  const m = /^\s*(\d+)\s*(ms|s|m|h|d)\s*$/.exec(text)
  const ms = m === null ? NaN : Number(m[1]) * DURATION_UNIT_MS[m[2]!]!
  if (!(ms >= 1 && ms <= 365 * 86_400_000)) throw new Error(`expected ${DURATION_FORMAT} between 1ms and 365d, got "${text}"`)
  return ms
}

/**
 * A listen address: an IP address, or a host name (resolved when listening). Four
 * dot-separated numbers must be an IPv4 address: `999.1.1.1` is a typo, not a name.
 */
export function checkListenHost (host: string): string {
  if (isIP(host) !== 0) return host
  if (/^[\d.]+$/.test(host) || !/^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/.test(host)) {
    throw new Error('expected an IP address (0.0.0.0, 127.0.0.1, ::) or a host name')
  }
  return host
}

/** An address only this host can reach. */
export function isLoopback (host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host)
}
