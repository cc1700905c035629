/**
 * A parser for the Prometheus text exposition format (version 0.0.4), enough to check
 * what the gateway exposes: HELP and TYPE lines, samples with labels and values.
 */
export interface Sample { name: string, labels: Record<string, string>, value: number }
export interface Family { name: string, help: string, type: string, samples: Sample[] }

const SAMPLE_RE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \d+)?$/
const LABEL_RE = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g

export function parsePrometheus (text: string): Map<string, Family> {
  const families = new Map<string, Family>()
  const family = (name: string): Family => {
    let f = families.get(name)
    if (f === undefined) families.set(name, f = { name, help: '', type: 'untyped', samples: [] })
    return f
  }
  for (const line of text.split('\n')) {
    if (line === '') continue
    let m: RegExpExecArray | null
    if ((m = /^# HELP (\S+) (.*)$/.exec(line)) !== null) { family(m[1]!).help = m[2]!; continue }
    if ((m = /^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/.exec(line)) !== null) { family(m[1]!).type = m[2]!; continue }
    if (line.startsWith('#')) continue
    m = SAMPLE_RE.exec(line)
    if (m === null) throw new Error(`not a Prometheus text line: ${line}`)
    const labels: Record<string, string> = {}
    for (const l of (m[2] ?? '').matchAll(LABEL_RE)) labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c))
    const base = m[1]!.replace(/_(bucket|sum|count)$/, '')
    const owner = families.has(m[1]!) ? m[1]! : base
    family(owner).samples.push({ name: m[1]!, labels, value: Number(m[3]) })
  }
  return families
}
