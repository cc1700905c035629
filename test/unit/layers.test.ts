/**
 * Folders are layers (STYLE.md): every module of src/ imports only from its own folder and
 * the layers below it, and no chain of imports comes back to where it started. Type-only
 * imports count too: they are where a cycle hides until someone turns one into a value.
 * Reads the TypeScript sources with oxc's parser, so nothing is missed by a pattern.
 */
import t from 'tap'
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, normalize, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseSync } from 'oxc-parser'

const SRC = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'src')

/** Lowest first. A folder, or a module at the top of src/ by its file name. */
const LAYERS: readonly string[][] = [
  ['core'], // the vocabulary: rate, policy, decision, clock, paths, header names
  ['errors.ts', 'log.ts'],
  ['algorithms'], // pure functions of (state, policy, now)
  ['config'], // env and rules files, parsed into core types
  ['identity'],
  ['store'],
  ['observe'],
  ['proxy'],
  ['limiter'],
  ['control'],
  ['decision', 'rls'], // the limiter as a service for other proxies (HTTP questions; Envoy's RLS over gRPC)
  ['admin'],
  ['app.ts', 'healthcheck.ts'],
  ['workers'], // WORKERS > 1: the main thread supervising worker threads, and a worker's entry
  ['server.ts'],
  ['demo']
]
const rank = new Map(LAYERS.flatMap((names, i) => names.map(n => [n, i] as const)))

/** Every .ts module under src/ (declaration files aside), relative to src/. */
function modules (dir = SRC): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap(e => {
    const path = join(dir, e.name)
    if (e.isDirectory()) return modules(path)
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [relative(SRC, path)] : []
  })
}

/** The modules of src/ that `file` imports or re-exports from, type-only ones included. */
function importsOf (file: string): string[] {
  const { module, errors } = parseSync(file, readFileSync(join(SRC, file), 'utf8'))
  if (errors.length > 0) throw new Error(`${file}: ${errors[0]!.message}`)
  const specifiers = [
    ...module.staticImports.map(i => i.moduleRequest.value),
    ...module.staticExports.flatMap(e => e.entries.map(x => x.moduleRequest?.value)).filter((v): v is string => v !== undefined)
  ]
  return specifiers.filter(s => s.startsWith('.')).map(s => normalize(join(dirname(file), s)).replace(/\.js$/, '.ts'))
}

const layerOf = (file: string): string => file.includes('/') ? file.slice(0, file.indexOf('/')) : file

type Node = Record<string, unknown>
/** Every node of an AST, depth first. */
function * walk (node: unknown): Generator<Node> {
  if (Array.isArray(node)) {
    for (const n of node) yield * walk(n)
  } else if (node !== null && typeof node === 'object') {
    yield node as Node
    for (const v of Object.values(node)) if (v !== null && typeof v === 'object') yield * walk(v)
  }
}

/**
 * Per-request fields: the properties a module adds to another package's interface
 * (`declare module 'fastify' { interface FastifyRequest { gwHeaders ... } }`), and the
 * property names a module reads or writes (`request.gwHeaders`).
 */
function requestFields (file: string, text = readFileSync(join(SRC, file), 'utf8')): { declared: string[], used: string[] } {
  const { program } = parseSync(file, text)
  const declared: string[] = []
  const used = new Set<string>()
  for (const node of walk(program.body)) {
    if (node.type === 'TSModuleDeclaration' && (node.id as Node).type === 'Literal') {
      for (const sig of walk(node.body)) if (sig.type === 'TSPropertySignature') declared.push((sig.key as { name: string }).name)
    }
    if (node.type === 'MemberExpression' && node.computed === false) used.add((node.property as { name: string }).name)
  }
  return { declared, used: [...used] }
}

/** Fields used by a module of a layer below the one that declares them. */
function declaredAbove (fields: ReadonlyMap<string, { declared: string[], used: string[] }>): string[] {
  const owner = new Map<string, string>()
  for (const [f, { declared }] of fields) for (const name of declared) owner.set(name, f)
  const wrong: string[] = []
  for (const [f, { used }] of fields) {
    for (const name of used) {
      const d = owner.get(name)
      if (d !== undefined && layerOf(d) !== layerOf(f) && rank.get(layerOf(d))! > rank.get(layerOf(f))!) wrong.push(`${f} uses ${name}, declared in ${d}`)
    }
  }
  return wrong
}

const files = modules()
const graph = new Map(files.map(f => [f, importsOf(f)]))

t.test('every module of src/ has a layer, and every import resolves to a module', async t => {
  for (const f of files) t.ok(rank.has(layerOf(f)), `${f} belongs to a layer`)
  for (const [f, deps] of graph) for (const d of deps) t.ok(graph.has(d), `${f} imports ${d}, which exists`)
})

/** Imports that reach a layer above the importer's, or a sideways one of the same rank. */
function upward (graph: ReadonlyMap<string, readonly string[]>): string[] {
  const wrong: string[] = []
  for (const [f, deps] of graph) {
    for (const d of deps) {
      if (layerOf(d) !== layerOf(f) && rank.get(layerOf(d))! >= rank.get(layerOf(f))!) wrong.push(`${f} → ${d}`)
    }
  }
  return wrong
}

/** Every cycle a depth-first search closes: a module met again while still on the path. */
function cycles (graph: ReadonlyMap<string, readonly string[]>): string[] {
  const done = new Set<string>()
  const path: string[] = []
  const found: string[] = []
  const visit = (f: string): void => {
    const at = path.indexOf(f)
    if (at !== -1) {
      found.push([...path.slice(at), f].join(' → '))
      return
    }
    if (done.has(f)) return
    path.push(f)
    for (const d of graph.get(f) ?? []) visit(d)
    path.pop()
    done.add(f)
  }
  for (const f of graph.keys()) visit(f)
  return found
}

t.test('the checks find what they look for (a graph built to break both)', async t => {
  const bad = new Map([
    ['core/a.ts', ['core/b.ts']],
    ['core/b.ts', ['config/c.ts']],
    ['config/c.ts', ['core/a.ts']]
  ])
  t.same(upward(bad), ['core/b.ts → config/c.ts'])
  t.same(cycles(bad), ['core/a.ts → core/b.ts → config/c.ts → core/a.ts'])
  const parsed = parseSync('a.ts', "import type { B } from './b.js'\nexport { c } from '../core/c.js'").module
  t.same(parsed.staticImports.map(i => i.moduleRequest.value), ['./b.js'], 'a type-only import is read')
  t.same(parsed.staticExports.flatMap(e => e.entries.map(x => x.moduleRequest?.value)), ['../core/c.js'], 'a re-export is read')
})

t.test('a request field is declared in the layer of its lowest user or below (STYLE 21)', async t => {
  const fields = new Map(files.map(f => [f, requestFields(f)]))
  t.ok([...fields.values()].some(x => x.declared.includes('gwHeaders')), 'the request fields are found')
  t.same(declaredAbove(fields), [], 'no module reads a request field a higher layer declares')
  // The check itself, on modules built to break it: the limiter declares, the proxy reads.
  const bad = new Map([
    ['limiter/plugin.ts', requestFields('limiter/plugin.ts', "declare module 'fastify' { interface FastifyRequest { gwThing: string | null } }")],
    ['proxy/forward.ts', requestFields('proxy/forward.ts', 'export const read = (request: any) => request.gwThing')]
  ])
  t.same(declaredAbove(bad), ['proxy/forward.ts uses gwThing, declared in limiter/plugin.ts'])
})

t.test('each module imports only from its own layer and the layers below', async t => {
  t.same(upward(graph), [], 'no import reaches up or sideways')
})

t.test('no import cycle in src/, type-only imports included', async t => {
  t.same(cycles(graph), [])
})
