#!/usr/bin/env bash
# npm run test:container: the "Deploy with Docker" steps of the README, for real, against a
# container engine (../shared/container/container-setup.sh provides one where none answers).
# Works on a copy of the tracked files, with its own .env; prints "N passed, N failed".
set -uo pipefail
export DOCKER_BUILDKIT=0
here=$(cd "$(dirname "$0")/.." && pwd)
setup="$here/../shared/container/container-setup.sh"
pass=0; fail=0
ok()  { echo "ok   - $1"; pass=$((pass+1)); }
bad() { echo "FAIL - $1"; fail=$((fail+1)); }
finish() { echo "$pass passed, $fail failed"; [ "$fail" = 0 ]; exit $?; }

if ! timeout 20 docker info >/dev/null 2>&1; then
  if [ -x "$setup" ] || [ -f "$setup" ]; then
    echo "container-test: no engine answers; running container-setup.sh"
    bash "$setup" >/tmp/container-setup.log 2>&1 || { bad "container-setup.sh (see /tmp/container-setup.log)"; tail -20 /tmp/container-setup.log; finish; }
  else
    bad "no container engine and no $setup"; finish
  fi
fi

work=$(mktemp -d /tmp/gw-container.XXXXXX)
cleanup() {
  (cd "$work" && timeout 120 docker compose down -v -t 5 >/dev/null 2>&1
   timeout 120 docker compose -f docker-compose.replicas.yml down -v -t 5 >/dev/null 2>&1)
  rm -rf "$work"
}
trap cleanup EXIT
(cd "$here" && git ls-files -z | xargs -0 cp --parents -t "$work" 2>/dev/null) || (cd "$here" && tar --exclude=node_modules --exclude=dist --exclude=.git -cf - . | tar -xf - -C "$work")
cd "$work"

# The operator's .env: small limits so a few requests show them; keys for the fallback check.
cat > .env <<'ENV'
RATE_LIMIT_RATE=1/m
RATE_LIMIT_BURST=5
API_KEYS=container-key-1,container-key-2
LOG_LEVEL=warn
ENV
BURST=5

code() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@"; }

# Podman behind the Docker API can get into a state where it answers but starts no
# container ("write child: broken pipe", or a bare "Error response from daemon: exit status
# 1" on starting any container, even `docker run --rm redis:7`; seen after apt-get installed
# other packages while it ran, and after hours of other work on the machine). That is the
# engine's state, not ours: on those errors only, restart the engine with the shared
# scripts and try once more (`up` is idempotent).
compose_up() {
  local log=$1; shift
  timeout 900 docker compose "$@" up -d --build --wait >"$log" 2>&1 && return 0
  grep -qE 'broken pipe|Error response from daemon: exit status 1' "$log" || return 1
  echo "container-test: the engine starts no container; restarting it and retrying once" >&2
  docker compose "$@" down -v >/dev/null 2>&1
  bash "$here/../shared/container/container-teardown.sh" >/tmp/container-teardown.log 2>&1
  bash "$setup" >/tmp/container-setup.log 2>&1 || return 1
  timeout 900 docker compose "$@" up -d --build --wait >>"$log" 2>&1
}

# --- README: Deploy with Docker -------------------------------------------------------------
t=$(date +%s)
if compose_up up.log; then ok "docker compose up -d --build --wait: healthy in $(( $(date +%s) - t )) s"; else bad "docker compose up"; tail -40 up.log; finish; fi
health=$(docker compose ps --format '{{.Service}}={{.Health}}' | sort | tr '\n' ' ')
[[ "$health" == *"gateway=healthy"*"redis=healthy"*"web=healthy"* ]] && ok "health checks: $health" || bad "health checks: $health"
size=$(docker image inspect ratelimit-gateway:local --format '{{.Size}}' 2>/dev/null)
[ -n "$size" ] && ok "image ratelimit-gateway:local is $(( size / 1024 / 1024 )) MiB" || bad "image size unknown"
user=$(docker compose exec -T gateway node -e 'console.log(process.getuid())' 2>/dev/null | tr -d '\r')
[ "$user" = 1000 ] && ok "gateway runs as the non-root node user (uid 1000)" || bad "gateway uid: $user"

body=$(curl -s --max-time 5 http://127.0.0.1:8000/ping)
[ "$body" = '{"message":"pong"}' ] && ok "GET :8000/ping through the gateway answers pong" || bad "GET /ping: $body"
statuses=""
for i in $(seq 2 "$BURST"); do statuses="$statuses$(code http://127.0.0.1:8000/ping) "; done
headers=$(curl -s -D - -o /dev/null --max-time 5 http://127.0.0.1:8000/ping | tr -d '\r')
last=$(head -1 <<<"$headers" | awk '{print $2}')
[ "$statuses" = "200 200 200 200 " ] && [ "$last" = 429 ] && ok "request $((BURST + 1)) of a burst of $BURST is a 429 ($statuses$last)" || bad "burst: $statuses$last"
grep -qi '^retry-after: [0-9]' <<<"$headers" && grep -qi '^ratelimit: "default";r=0' <<<"$headers" && grep -qi '^x-ratelimit-remaining: 0' <<<"$headers" \
  && ok "the 429 carries Retry-After, RateLimit and X-RateLimit-* headers" || { bad "429 headers"; echo "$headers"; }
[ -n "$(docker compose exec -T redis redis-cli --scan --pattern 'rl:*' | head -1)" ] && ok "the limit state is in Redis" || bad "no rl:* key in Redis"

docker compose stop redis >/dev/null 2>&1
fallback=""
for i in 1 2 3; do fallback="$fallback$(code -H 'x-api-key: container-key-2' http://127.0.0.1:8000/ping) "; done
[ "$fallback" = "200 200 200 " ] && ok "redis stopped: the gateway keeps answering ($fallback)" || bad "with redis stopped: $fallback"
mode=$(docker compose exec -T gateway node -e "fetch('http://127.0.0.1:9000/readyz').then(r => r.json()).then(j => console.log(j.store.mode))" 2>/dev/null | tr -d '\r')
[ "$mode" = local-fallback ] && ok "/readyz reports store mode $mode" || bad "store mode: $mode"
[ "$(code -H 'x-api-key: container-key-1' http://127.0.0.1:8000/ping)" = 200 ] && ok "a fresh client is admitted by the local fallback" || bad "fresh client during fallback"

t=$(date +%s)
docker compose stop gateway >/dev/null 2>&1
exit_code=$(docker inspect "$(docker compose ps -a -q gateway)" --format '{{.State.ExitCode}}' 2>/dev/null)
[ "$exit_code" = 0 ] && ok "SIGTERM: the gateway drained and exited 0 in $(( $(date +%s) - t )) s" || bad "gateway exit code after stop: $exit_code"
timeout 120 docker compose down -v >/dev/null 2>&1 && ok "docker compose down -v" || bad "docker compose down -v"

# --- README: two replicas, one Redis ------------------------------------------------------
if compose_up up2.log -f docker-compose.replicas.yml; then ok "replicas: docker compose -f docker-compose.replicas.yml up -d --build --wait"; else bad "replicas up"; tail -40 up2.log; finish; fi
shared=""
for i in $(seq 1 $((BURST + 1))); do
  port=$(( i % 2 == 0 ? 8001 : 8000 ))
  shared="$shared$(code http://127.0.0.1:$port/ping) "
done
[ "$shared" = "200 200 200 200 200 429 " ] && ok "two replicas share one limit: alternating :8000/:8001 gives $shared" || bad "replicas: $shared"
timeout 120 docker compose -f docker-compose.replicas.yml down -v >/dev/null 2>&1 && ok "replicas: docker compose down -v" || bad "replicas down"

finish
