/**
 * Client addresses as rate-limit keys. IPv4 stays as is; an IPv4-mapped IPv6 address folds
 * to its IPv4 form (the same client over a dual-stack socket); any other IPv6 address is
 * reduced to its prefix (a /64 is one subscriber: keying by the full address would let a
 * client rotate through 2^64 addresses, each with a fresh bucket).
 */
import ipaddr from 'ipaddr.js'

const MAPPED_PREFIX = '::ffff:'

/** The key for a client address; `prefixLength` applies to IPv6 only. */
export function ipKey (address: string, prefixLength: number): string {
  if (address.indexOf(':') === -1) return address
  if (address.startsWith(MAPPED_PREFIX) && address.indexOf('.') !== -1) return address.slice(MAPPED_PREFIX.length)
  let parsed: ipaddr.IPv6
  try {
    parsed = ipaddr.IPv6.parse(address)
  } catch {
    // Not an address the socket layer would give us; key it verbatim (bounded by the caller).
    return address
  }
  if (parsed.isIPv4MappedAddress()) return parsed.toIPv4Address().toString()
  return maskIPv6(parsed, prefixLength)
}

function maskIPv6 (addr: ipaddr.IPv6, prefixLength: number): string {
  const parts = addr.parts.slice()
  for (let i = 0; i < 8; i++) {
    const keep = Math.min(16, Math.max(0, prefixLength - i * 16))
    parts[i] = keep === 0 ? 0 : (parts[i]! & (0xffff << (16 - keep)) & 0xffff)
  }
  return `${new ipaddr.IPv6(parts).toString()}/${prefixLength}`
}
