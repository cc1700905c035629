#!/usr/bin/env bash
# `npm test`'s prerequisites beyond npm, installed when missing (Debian packages):
# redis-server (the tests start real servers and kill them) and Chromium (the dashboard
# test drives it headless through playwright-core). Run by `pretest`.
set -uo pipefail
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
[ -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ] || need+=(chromium)
[ ${#need[@]} -eq 0 ] && exit 0
echo "test: installing ${need[*]} (Debian packages)"
if [ "$(id -u)" -eq 0 ]; then sudo=""
elif command -v sudo >/dev/null 2>&1; then sudo="sudo"
else
  echo "test: ${need[*]} missing and no way to install them here: apt-get install ${need[*]}" >&2
  exit 1
fi
$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null \
  || { echo "test: could not install ${need[*]}" >&2; exit 1; }
