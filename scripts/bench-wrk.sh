#!/usr/bin/env bash
# Durable target edits measured with wrk (Debian's), a client that is not the bottleneck:
# C keep-alive connections POST /api/v1/resources/cpu/target for DURATION seconds against
# the release server on loopback with a fresh --data-dir (every answer waits for its
# SQLite commit). Prints wrk's requests/s and latency percentiles, then checks the books:
# the audit log holds exactly as many changes as wrk counted 2xx answers.
#
# To compare two builds in one session (before/after a change), run it once per binary:
#   PERFPILOT_BIN=/path/to/old/perfpilot scripts/bench-wrk.sh
#   PERFPILOT_BIN=target/release/perfpilot SKIP_BUILD=1 scripts/bench-wrk.sh
#
# wrk and the server share the machine's cores; note `uptime` with the numbers.
#
# Environment:
#   CONNECTIONS=64  THREADS=2  DURATION=20  AUTOSAVE_EVERY=20
#   SKIP_BUILD=1   use the existing target/release binary
#   PERFPILOT_BIN=target/release/perfpilot
set -euo pipefail
cd "$(dirname "$0")/.."

CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
DURATION=${DURATION:-20}
AUTOSAVE_EVERY=${AUTOSAVE_EVERY:-20}
PERFPILOT_BIN=${PERFPILOT_BIN:-target/release/perfpilot}

command -v wrk >/dev/null || {
  echo "installing wrk (Debian)"
  if [ "$(id -u)" -eq 0 ]; then apt-get install -y -qq wrk >/dev/null; else sudo apt-get install -y -qq wrk >/dev/null; fi
}
if [[ -z "${SKIP_BUILD:-}" ]]; then
  cargo build -q --release -p server
fi

data=$(mktemp -d)
pid=
cleanup() {
  [[ -n "$pid" ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$data"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# The per-client mutation limit (25,000/s by default) would measure itself: lift it.
RUST_LOG=warn "$PERFPILOT_BIN" --listen "127.0.0.1:$port" --metrics-listen off \
  --mutation-rate 1000000 --mutation-burst 1000000 \
  --autosave-every "$AUTOSAVE_EVERY" --data-dir "$data/db" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
  sleep 0.1
done

# Each request sets a different value (10–89), so every one is a real change.
cat > "$data/edit.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, "/api/v1/resources/cpu/target",
    nil, string.format('{"metric":"utilization","value":%d}', 10 + n % 80))
end
LUA

echo "== $PERFPILOT_BIN, $CONNECTIONS connections, ${DURATION}s, uptime: $(uptime | sed 's/.*load average/load average/')"
wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$data/edit.lua" \
  "http://127.0.0.1:$port" | tee "$data/wrk.out"

# The books: every acknowledged edit is in the audit log (the log also counts the
# pre-run state as nothing: a fresh data directory starts at change 0).
sleep 1
changes=$(curl -sf "http://127.0.0.1:$port/api/audit?limit=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])')
requests=$(grep -Eo '^ +[0-9]+ requests in' "$data/wrk.out" | grep -Eo '[0-9]+')
non2xx=$(grep -Eo 'Non-2xx or 3xx responses: [0-9]+' "$data/wrk.out" | grep -Eo '[0-9]+$' || echo 0)
echo "books: wrk completed $requests requests ($non2xx non-2xx); the audit log holds $changes changes"
