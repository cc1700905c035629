#!/usr/bin/env bash
# `tap build` (7 s here) once, not before every unit run: it compiles tap's runner with the
# plugins package.json names (the TypeScript loader off: TypeScript 7 breaks it), and its
# output stays in node_modules until the next `npm ci`. Built already when the built
# runner exists and loads no TypeScript plugin.
built=node_modules/@tapjs/test/test-built/src/index.ts
if [ -f "$built" ] && ! grep -q '@tapjs/typescript' "$built"; then exit 0; fi
exec npx tap build
