/**
 * The path a route rule is matched against. A rule must not be dodged by spelling the
 * same path differently, so the request path is taken the way a permissive upstream
 * could read it: percent-decoded (repeatedly, for double encoding), backslashes as
 * slashes, empty and dot segments resolved, lower-cased. The request itself goes
 * upstream untouched; only the matching sees this form. Erring this way can only make a
 * rule apply to more requests, never to fewer.
 */

/** Anything that could make two spellings of one path differ. */
const SUSPICIOUS = /%|\\|\/\.|\/\//
/** Rounds of percent-decoding: enough for double and triple encoding. */
const DECODE_ROUNDS = 3

export function normalizePath (url: string): string {
  let path = url
  if (path.charCodeAt(0) !== 47 /* / */) {
    // Absolute form (`GET http://host/path`): the path starts after the authority.
    const scheme = path.indexOf('://')
    if (scheme !== -1) {
      const slash = path.indexOf('/', scheme + 3)
      path = slash === -1 ? '/' : path.slice(slash)
    }
  }
  let end = path.indexOf('?')
  const hash = path.indexOf('#')
  if (hash !== -1 && (end === -1 || hash < end)) end = hash
  if (end !== -1) path = path.slice(0, end)
  if (SUSPICIOUS.test(path)) {
    for (let i = 0; i < DECODE_ROUNDS && path.includes('%'); i++) {
      let decoded: string
      try {
        decoded = decodeURIComponent(path)
      } catch {
        break
      }
      path = decoded
    }
    path = path.replace(/\\/g, '/')
    const segments: string[] = []
    for (const s of path.split('/')) {
      if (s === '' || s === '.') continue
      if (s === '..') segments.pop()
      else segments.push(s)
    }
    const trailing = segments.length > 0 && /\/\.{0,2}$/.test(path)
    path = '/' + segments.join('/') + (trailing ? '/' : '')
  }
  return path.toLowerCase()
}

/** A `..` segment; `..;param` too, which servlet containers read as `..`. */
const DOT_DOT = /(^|[/\\])\.\.(;[^/\\]*)?([/\\]|$)/

/**
 * Whether a request target has a `..` segment (or `..;`), also once or twice percent-decoded (and
 * with backslashes as slashes): an upstream decoding more than once, or treating `\` as
 * `/`, could read it as leaving its root. Such targets are refused before anything else.
 */
export function climbsOut (url: string): boolean {
  let end = url.indexOf('?')
  if (end === -1) end = url.length
  let path = url.slice(0, end)
  // Fast path: nothing to decode and no dot pair.
  if (path.indexOf('%') === -1 && path.indexOf('..') === -1) return false
  for (let round = 0; round <= DECODE_ROUNDS; round++) {
    if (DOT_DOT.test(path)) return true
    if (path.indexOf('%') === -1) return false
    try {
      path = decodeURIComponent(path)
    } catch {
      return false
    }
  }
  // Encoded more deeply than any upstream decodes.
  return false
}
