import t from 'tap'
import { climbsOut, normalizePath } from '../../src/core/path.js'

// [request target, the form rules are matched against]
const CASES: Array<[string, string]> = [
  ['/search', '/search'],
  ['/search?q=1', '/search'],
  ['/search#frag', '/search'],
  ['/search?q#frag', '/search'],
  ['/search#frag?q', '/search'],
  ['/Search', '/search'],
  ['/%73earch', '/search'],
  ['/%2573earch', '/search'],
  ['//search', '/search'],
  ['/./search', '/search'],
  ['/x/../search', '/search'],
  ['/x/%2e%2e/search', '/search'],
  ['/x/..%2fsearch', '/search'],
  ['/x\\..\\search', '/search'],
  ['/../../search', '/search'],
  ['/export/', '/export/'],
  ['/export/./', '/export/'],
  ['/export/x/..', '/export/'],
  ['/bad%zz/x', '/bad%zz/x'],
  ['http://example.com/search?x', '/search'],
  ['http://example.com', '/'],
  ['*', '*']
]

t.test('the path rules are matched against: decoded, resolved, lower-cased', async t => {
  for (const [target, want] of CASES) t.equal(normalizePath(target), want, target)
})

t.test('a ".." segment, raw, encoded once, twice or thrice, or with backslashes, climbs out', async t => {
  const CLIMBS: Array<[string, boolean]> = [
    ['/x', false], ['/a..b', false], ['/...', false], ['/a/..b/', false], ['/x?a=/../', false], ['/%41/b', false], ['/%zz', false],
    ['/..', true], ['/a/../b', true], ['/%2e%2e/x', true], ['/%2E%2e/x', true], ['/..%2fx', true], ['/%252e%252e/x', true],
    ['/%25252e%25252e/x', true], ['/%2525252e%2525252e/x', false], ['/a\\..\\b', true], ['/%zz/..', true], ['/a/%2e%2e', true], ['/..;/x', true], ['/a/..;jsessionid=1/x', true], ['/a..;b', false]
  ]
  for (const [url, climbs] of CLIMBS) t.equal(climbsOut(url), climbs, url)
})
