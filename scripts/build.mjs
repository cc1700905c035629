// `npm run build`: compiles src/, test/ and bench/ into dist/ without dist/ ever missing a
// file. tsc writes into a staging folder beside dist/; each file then moves into dist/ by
// rename(2), which replaces it atomically, and files no source makes any more are removed
// last. A gateway or demo upstream started from dist/ while a build runs (the README's
// `npm run demo:upstream &` then `npm start`) reads the old file or the new, never none:
// `rm -rf dist && tsc` left it without dist/src/server.js for the seconds tsc takes.
import { spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'

const root = join(dirname(new URL(import.meta.url).pathname), '..')
const dist = join(root, 'dist')

/** Every file below `dir`, as paths relative to it. */
function files (dir) {
  const out = []
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) out.push(relative(dir, join(entry.parentPath ?? entry.path, entry.name)))
  }
  return out
}

// Beside dist/ (the same depth, so source maps' relative paths hold; the same file system, so rename works).
const stage = mkdtempSync(join(root, '.dist-build-'))
try {
  const tsc = spawnSync('tsc', ['-p', join(root, 'tsconfig.json'), '--outDir', stage], { stdio: 'inherit', cwd: root })
  if (tsc.status !== 0) {
    process.exitCode = tsc.status ?? 1
  } else {
    const made = new Set(files(stage))
    for (const file of made) {
      mkdirSync(dirname(join(dist, file)), { recursive: true })
      renameSync(join(stage, file), join(dist, file))
    }
    // What no source makes any more (a test renamed, a module removed) must not run.
    for (const file of files(dist)) if (!made.has(file)) rmSync(join(dist, file))
  }
} finally {
  rmSync(stage, { recursive: true, force: true })
}
