#!/usr/bin/env bash
# Target edits over HTTP: C keep-alive clients POST /api/set_target until COUNT edits are
# acknowledged, against the release server on loopback — once with durable state (a fresh
# --data-dir: every acknowledgement waits for its SQLite commit) and once --ephemeral (an
# in-memory database, the same code without fsync). Prints each run's throughput,
# p50/p99 latency and the books checks of `edits` (zero lost: audit rows == acknowledged;
# snapshots exactly every Nth), then the durable/ephemeral ratios.
#
# Client and server share the machine's cores; note `uptime` with the numbers.
#
# Environment:
#   CLIENTS=64  COUNT=100000  AUTOSAVE_EVERY=20
#   API=form (the UI's /api/set_target server function) or json (POST /api/v1/resources/ID/target)
#   SKIP_BUILD=1   use the existing target/release binaries
#   PERFPILOT_BIN=target/release/perfpilot  EDITS_BIN=target/release/edits
set -euo pipefail
cd "$(dirname "$0")/.."

CLIENTS=${CLIENTS:-64}
COUNT=${COUNT:-100000}
AUTOSAVE_EVERY=${AUTOSAVE_EVERY:-20}
API=${API:-form}
PERFPILOT_BIN=${PERFPILOT_BIN:-target/release/perfpilot}
EDITS_BIN=${EDITS_BIN:-target/release/edits}

if [[ -z "${SKIP_BUILD:-}" ]]; then
  cargo build -q --release -p server -p loadgen
fi

data=$(mktemp -d)
pid=
cleanup() {
  [[ -n "$pid" ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$data"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

run() { # mode args...
  local mode=$1; shift
  local port; port=$(free_port)
  RUST_LOG=warn "$PERFPILOT_BIN" --listen "127.0.0.1:$port" --metrics-listen off \
    --autosave-every "$AUTOSAVE_EVERY" "$@" >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
    sleep 0.1
  done
  echo "== $mode ($*), uptime: $(uptime | sed 's/.*load average/load average/')"
  "$EDITS_BIN" --addr "127.0.0.1:$port" --clients "$CLIENTS" --count "$COUNT" --api "$API" | tee "$data/$mode.out"
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
}

run durable --data-dir "$data/db"
run ephemeral --ephemeral

rate() { grep -o '= [0-9]* edits/s' "$data/$1.out" | grep -o '[0-9]*'; }
p() { grep -o "$2 [0-9.]* ms" "$data/$1.out" | head -1 | sed "s/^$2 //; s/ ms$//"; }
python3 - "$(rate durable)" "$(rate ephemeral)" "$(p durable p50)" "$(p ephemeral p50)" "$(p durable p99)" "$(p ephemeral p99)" <<'PY'
import sys
d, e, d50, e50, d99, e99 = map(float, sys.argv[1:])
print(f"ratio durable/ephemeral: throughput {d/e:.2f}, p50 {d50/e50:.2f}, p99 {d99/e99:.2f}")
PY
