// npm test's closing lines: one line of coverage (tap prints none when it is complete) and
// how long the run took. Run by `posttest`, after tap has written its coverage data.
import { spawnSync } from 'node:child_process'
import { readFileSync, statSync } from 'node:fs'

// Exits non-zero below 100%, which tap itself has already reported: the figures still count.
spawnSync('npx', ['tap', 'report', 'json-summary'], { stdio: 'ignore' })
const { total } = JSON.parse(readFileSync('.tap/report/coverage-summary.json', 'utf8'))
const part = name => `${name} ${total[name].pct}% (${total[name].covered}/${total[name].total})`
process.stdout.write(`# coverage: ${['statements', 'branches', 'functions', 'lines'].map(part).join(', ')}\n`)
// pretest stamps its start (build included); the suite ends now.
const started = statSync('.tap/test-started').mtimeMs
process.stdout.write(`# npm test took ${Math.round((Date.now() - started) / 1000)} s (build included)\n`)
