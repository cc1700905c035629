/**
 * The rate-limit response headers the gateway owns (lowercase), from the external
 * contract: the limiter writes them, and the proxy drops an upstream's of the same name.
 */
export const RATE_LIMIT_HEADER_NAMES: ReadonlySet<string> = new Set(['x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset', 'ratelimit-policy', 'ratelimit'])
