/**
 * The README's shell examples, parsed for test/process/readme.test.ts: every ```sh block, each
 * logical command in it (continuation lines joined), and what a command promises to print
 * (its `# → ...` comment).
 *
 * A block is run unless the line before it says why not:
 *   <!-- readme-test: skip — <reason> -->   not runnable on one machine (the reason says why)
 *   <!-- readme-test: continues -->         runs in the same shell as the previous run block
 *   <!-- readme-test: first: <command> -->  a new shell that runs <command> first
 *   <!-- readme-test: reuse-port -->         runs where Node has reusePort (≥ 22.12, Linux),
 *                                            and on other Nodes says it did not
 */

export interface Command {
  /** As printed, continuation lines joined with their backslash-newline kept. */
  readonly text: string
  /** The README line it starts on. */
  readonly line: number
  /** What it must print (`...` matches anything), from `# → <output>`; undefined: unchecked. */
  readonly expect: string | undefined
  /** A server started in the background with a trailing `&`: the log line that says it is ready. */
  readonly readyLine: string | undefined
}

export interface Block {
  readonly line: number
  readonly commands: readonly Command[]
  readonly skip: string | undefined
  readonly continues: boolean
  readonly first: string | undefined
  /** Needs reusePort (WORKERS > 1): run only on a Node that has it. */
  readonly reusePort: boolean
}

/** Servers the examples start, and the log line each prints once it serves. */
const SERVERS: ReadonlyArray<[RegExp, string]> = [
  [/\bnpm run demo:upstream\b/, 'demo upstream listening'],
  [/\bnpm (start|run demo)\b/, 'gateway ready'],
  [/\bredis-server\b/, 'Ready to accept connections']
]

/** The text of a line without its trailing comment (a `#` after whitespace, outside quotes). */
export function stripComment (line: string): { code: string, comment: string | undefined } {
  let quote: string | undefined
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!
    if (quote !== undefined) {
      if (c === quote) quote = undefined
    } else if (c === "'" || c === '"') {
      quote = c
    } else if (c === '#' && (i === 0 || /\s/.test(line[i - 1]!))) {
      return { code: line.slice(0, i).trimEnd(), comment: line.slice(i + 1).trim() }
    }
  }
  return { code: line.trimEnd(), comment: undefined }
}

/** `→ 200 200 429 — why` → `200 200 429`: the output ends at ` — ` or at two spaces. */
function expectation (comment: string | undefined): string | undefined {
  if (comment === undefined || !comment.startsWith('→ ')) return undefined
  return comment.slice(2).split(/ — | {2}/, 1)[0]!.trim()
}

export function parseReadme (text: string): Block[] {
  const lines = text.split('\n')
  const blocks: Block[] = []
  for (let i = 0; i < lines.length; i++) {
    if (lines[i] !== '```sh') continue
    const directive = /^<!-- readme-test: (.*) -->$/.exec(lines[i - 1] ?? '')?.[1]
    const commands: Command[] = []
    let j = i + 1
    for (; j < lines.length && lines[j] !== '```'; j++) {
      const start = j
      let joined = lines[j]!
      while (joined.endsWith('\\') && j + 1 < lines.length) joined += '\n' + lines[++j]!
      const last = joined.split('\n').at(-1)!
      const { code, comment } = stripComment(last)
      const body = [...joined.split('\n').slice(0, -1), code].join('\n')
      if (body.trim() === '') continue
      const background = body.trimEnd().endsWith('&') && !body.trimEnd().endsWith('&&')
      const server = SERVERS.find(([re]) => re.test(body))
      commands.push({ text: body, line: start + 1, expect: expectation(comment), readyLine: background && server ? server[1] : undefined })
    }
    blocks.push({
      line: i + 1,
      commands,
      skip: directive?.startsWith('skip') ? directive.replace(/^skip\s*—?\s*/, '') : undefined,
      continues: directive === 'continues',
      first: directive?.startsWith('first: ') ? directive.slice('first: '.length) : undefined,
      reusePort: directive === 'reuse-port'
    })
    i = j
  }
  return blocks
}

/** A regular expression for an expectation: `...` matches anything, whitespace any run of it. */
export function outputPattern (expect: string): RegExp {
  const parts = expect.split('...').map(p => p.trim().split(/\s+/).filter(Boolean).map(w => w.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('\\s+'))
  return new RegExp('^\\s*' + parts.join('[\\s\\S]*') + '\\s*$')
}

/**
 * One bash script for a shell session: every command as printed, each framed by markers
 * (`@@CMD n`, `@@RC n status`) so its output and status can be told apart. A server started
 * in the background has its output sent to a log of its own, and the script waits for its
 * ready line, as a person waits for it before typing the next command.
 */
export function sessionScript (commands: readonly Command[], logDir: string): string {
  const out = [
    'set +e',
    '__ready () { for i in $(seq 1 1200); do grep -q "$2" "$1" 2>/dev/null && return 0; kill -0 "$3" 2>/dev/null || { echo "@@DIED"; tail -n 20 "$1"; return 1; }; sleep 0.05; done; echo "@@NOT-READY"; tail -n 20 "$1"; return 1; }'
  ]
  commands.forEach((c, n) => {
    out.push(`printf '\\n@@CMD ${n}\\n'`)
    if (c.readyLine !== undefined) {
      const log = `${logDir}/server-${n}.log`
      out.push(`${c.text.trimEnd().replace(/&$/, '')} > ${log} 2>&1 &`)
      out.push(`__ready ${log} '${c.readyLine}' $!`)
    } else {
      out.push(c.text)
    }
    out.push(`printf '\\n@@RC ${n} %d\\n' $?`)
  })
  return out.join('\n') + '\n'
}

export interface Outcome { output: string, status: number | undefined }

/** Splits a session's stdout by the markers sessionScript wrote. */
export function outcomes (stdout: string, count: number): Outcome[] {
  const result: Outcome[] = Array.from({ length: count }, () => ({ output: '', status: undefined }))
  const re = /\n@@CMD (\d+)\n([\s\S]*?)\n@@RC \1 (\d+)\n/g
  for (const m of ('\n' + stdout).matchAll(re)) {
    result[Number(m[1])] = { output: m[2]!, status: Number(m[3]) }
  }
  return result
}
