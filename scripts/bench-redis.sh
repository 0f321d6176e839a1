#!/usr/bin/env bash
# The cost on Redis of watching it at 1 Hz: perfpilot (release) against Debian's
# prometheus-redis-exporter scraped every second, one at a time against one throwaway
# Redis 7 holding KEYS keys (no other load, so what Redis spends is the watcher's).
# For DURATION seconds per phase it measures the time Redis spent executing commands
# (`INFO commandstats` usec: the watcher's, as it runs alone), Redis' CPU time (utime +
# stime of the process from /proc, 10 ms ticks, so coarse), the commands it processed and
# the bytes it sent,
# first with nobody watching (the idle baseline), then perfpilot alone, then the
# exporter alone. Prints one table row per phase.
#
# Installs redis-server and prometheus-redis-exporter when missing (their daemons held
# back); starts and removes everything itself.
#
# Environment: DURATION=60  KEYS=10000  SKIP_BUILD=1  PERFPILOT_BIN=target/release/perfpilot
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-60}
KEYS=${KEYS:-10000}
PERFPILOT_BIN=${PERFPILOT_BIN:-target/release/perfpilot}

for pkg in redis-server prometheus-redis-exporter; do
  if ! dpkg -s "$pkg" >/dev/null 2>&1; then
    [[ -e /usr/sbin/policy-rc.d ]] || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; added_policy=1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null
    [[ -n "${added_policy:-}" ]] && rm -f /usr/sbin/policy-rc.d
  fi
done
if [[ -z "${SKIP_BUILD:-}" ]]; then
  cargo build -q --release -p server
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
dir=$(mktemp -d /tmp/bench-redis.XXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [[ -f "$dir/redis.pid" ]] && kill -9 "$(cat "$dir/redis.pid")" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
port=$(free_port)
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
  --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --dir "$dir" >/dev/null
for _ in $(seq 50); do redis-cli -p "$port" PING >/dev/null 2>&1 && break; sleep 0.1; done
redis_pid=$(cat "$dir/redis.pid")
seq 1 "$KEYS" | awk '{print "SET key:" $1 " value-" $1}' | redis-cli -p "$port" >/dev/null

sample() { # -> "cpu_ticks commands bytes_out command_usec"
  local ticks stats usec
  ticks=$(awk '{print $14 + $15}' "/proc/$redis_pid/stat")
  stats=$(redis-cli -p "$port" INFO stats | tr -d '\r')
  usec=$(redis-cli -p "$port" INFO commandstats | tr -d '\r' | grep -o 'usec=[0-9]*' | cut -d= -f2 | awk '{s+=$1} END {print s+0}')
  echo "$ticks $(awk -F: '$1=="total_commands_processed"{print $2}' <<<"$stats") $(awk -F: '$1=="total_net_output_bytes"{print $2}' <<<"$stats") $usec"
}
hz=$(getconf CLK_TCK)
row() { # name before after
  python3 - "$1" "$2" "$3" "$DURATION" "$hz" <<'PY'
import sys
name, before, after, secs, hz = sys.argv[1], sys.argv[2].split(), sys.argv[3].split(), float(sys.argv[4]), int(sys.argv[5])
t0, c0, o0, u0 = map(int, before)
t1, c1, o1, u1 = map(int, after)
# The two INFO calls of each sample are the script's own: 4 commands per phase.
print(f"| {name} | {(u1-u0)/secs:.0f} | {(t1-t0)/hz/secs*100:.2f} | {max(c1-c0-4,0)/secs:.1f} | {(o1-o0)/secs/1024:.1f} |")
PY
}
measure() { # name
  sleep 5  # connected and warmed up
  local before after
  before=$(sample)
  sleep "$DURATION"
  after=$(sample)
  row "$1" "$before" "$after"
}

echo "| watcher | Redis command time (µs/s) | Redis process CPU (% of a core) | commands/s | KiB/s sent |"
echo "|---|---|---|---|---|"
measure "nobody (idle baseline)"

cat > "$dir/perfpilot.toml" <<TOML
[[redis]]
name = "bench"
url = "redis://127.0.0.1:$port/0"
TOML
pp_port=$(free_port)
RUST_LOG=warn "$PERFPILOT_BIN" --listen "127.0.0.1:$pp_port" --metrics-listen off --ephemeral \
  --config "$dir/perfpilot.toml" >/dev/null 2>&1 &
pp=$!
pids+=($pp)
measure "perfpilot (1 Hz)"
kill "$pp"; wait "$pp" 2>/dev/null || true

ex_port=$(free_port)
prometheus-redis-exporter --redis.addr="redis://127.0.0.1:$port" \
  --web.listen-address="127.0.0.1:$ex_port" >/dev/null 2>&1 &
pids+=($!)
( while true; do curl -sf "http://127.0.0.1:$ex_port/metrics" >/dev/null || true; sleep 1; done ) &
pids+=($!)
version=$(prometheus-redis-exporter --version 2>&1 | grep -oE 'v?[0-9]+\.[0-9]+\.[0-9]+' | head -1 || true)
measure "redis_exporter ${version} (scraped at 1 Hz)"
echo "(Redis $(redis-server --version | grep -o 'v=[0-9.]*'), $KEYS keys, no other load; $DURATION s per phase; load: $(uptime | sed 's/.*load average/load average/'))"
