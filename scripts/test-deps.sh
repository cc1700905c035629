#!/usr/bin/env bash
# `npm test`'s prerequisites beyond npm, installed when missing (Debian packages):
# redis-server (the tests start real servers and kill them), Chromium (the dashboard
# test drives it headless through playwright-core), nginx-light and caddy (the decision
# listener is tested behind their auth_request and forward_auth; both run as the tests'
# own processes on loopback ports, never as services), prometheus and
# prometheus-alertmanager (the alerting rules and the Grafana dashboard's queries are
# checked by a real Prometheus scraping a gateway, its alert delivered by a real
# Alertmanager; both are the tests' own processes too), python3-grpcio and python3-grpc-tools
# (the rate limit service asked by a gRPC client that is not its own). Run by `pretest`.
set -uo pipefail
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
[ -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ] || need+=(chromium)
command -v nginx >/dev/null 2>&1 || need+=(nginx-light)
command -v caddy >/dev/null 2>&1 || need+=(caddy)
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || need+=(prometheus-alertmanager)
# The rate limit service's wire format is checked by a client that is not grpc-js: gRPC's
# C core from Python, with protoc's Python messages (Debian's python3, whatever python3 is first on PATH).
/usr/bin/python3 -c 'import grpc' >/dev/null 2>&1 || need+=(python3-grpcio)
/usr/bin/python3 -c 'import grpc_tools' >/dev/null 2>&1 || need+=(python3-grpc-tools)
[ ${#need[@]} -eq 0 ] && exit 0
echo "test: installing ${need[*]} (Debian packages)"
if [ "$(id -u)" -eq 0 ]; then sudo=""
elif command -v sudo >/dev/null 2>&1; then sudo="sudo"
else
  echo "test: ${need[*]} missing and no way to install them here: apt-get install ${need[*]}" >&2
  exit 1
fi
# A package must not start its service (nginx would take port 80): policy-rc.d says no,
# Debian's way, for the install only, where nothing said so already.
guard=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null && $sudo chmod +x /usr/sbin/policy-rc.d && guard=1
fi
$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
installed=$?
[ -n "$guard" ] && $sudo rm -f /usr/sbin/policy-rc.d
[ "$installed" -eq 0 ] || { echo "test: could not install ${need[*]}" >&2; exit 1; }
