#!/usr/bin/env bash
# Live fan-out: N websocket clients on /ws/live against the release server, on loopback.
#
# Builds the release server and loadgen, starts perfpilot on a free 127.0.0.1 port with
# `--metrics-listen off`, then for each client count runs loadgen for DURATION seconds.
# Over each run it samples the server's CPU time (utime + stime from /proc/PID/stat) and
# RSS (VmRSS) before and after, and prints delay percentiles (tick's scheduled wall time
# → receipt), frames, dropped clients, server CPU as % of one core and RSS per connection.
# A 0-client run first gives the baseline of the server alone.
#
# The tick's `at_unix_ms` is its slot on the wall-clock grid, a constant offset of up to
# ± half a period away from when it really fired (see loadgen's docs), so the table also
# shows the smallest delay (≈ that offset) and the fan-out spread (receipt minus the first
# receipt of the same tick), which has no offset.
#
# loadgen runs on the same cores as the server, so the delays are an upper bound on the
# server's own delivery delay; note `uptime` with the numbers.
#
# Environment:
#   CLIENTS="100 1000"   client counts, one run each (a 0-client baseline always runs)
#   DURATION=30          seconds per run (at most 600)
#   SETTLE=3             seconds after connecting before the next run starts
#   SKIP_BUILD=1         use the existing target/release binaries
#   PERFPILOT_BIN=target/release/perfpilot  LOADGEN_BIN=target/release/loadgen
set -euo pipefail
cd "$(dirname "$0")/.."

CLIENTS=${CLIENTS:-"100 1000"}
DURATION=${DURATION:-30}
SETTLE=${SETTLE:-3}
PERFPILOT_BIN=${PERFPILOT_BIN:-target/release/perfpilot}
LOADGEN_BIN=${LOADGEN_BIN:-target/release/loadgen}

if [[ -z "${SKIP_BUILD:-}" ]]; then
  # The websocket does not need the browser bundle, so only the two binaries are built
  # (`scripts/build.sh release` builds the bundle too, for a full local run).
  cargo build -q --release -p server -p loadgen
fi

# 1,000 clients need 1,000 sockets in each process, plus files and the listener.
ulimit -n 8192 2>/dev/null || ulimit -n "$(ulimit -Hn)"
[[ $(ulimit -n) -ge 2100 ]] || { echo "ulimit -n is $(ulimit -n); need ≥ 2100" >&2; exit 1; }

free_port() {
  python3 - <<'EOF'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
EOF
}

PORT=$(free_port)
WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
  [[ -n "$SERVER_PID" ]] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

"$PERFPILOT_BIN" --listen "127.0.0.1:$PORT" --metrics-listen off >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
  curl -fsS -o /dev/null "http://127.0.0.1:$PORT/healthz" 2>/dev/null && break
  sleep 0.1
done
curl -fsS -o /dev/null "http://127.0.0.1:$PORT/healthz" || {
  echo "perfpilot did not start:" >&2
  cat "$WORK/server.log" >&2
  exit 1
}

CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

echo "perfpilot on 127.0.0.1:$PORT (pid $SERVER_PID); load average: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
sleep 2
RSS_IDLE=$(rss_kb "$SERVER_PID")

echo
echo "| clients | connect failed | dropped | tick frames | delay p50 / p99 / max (ms) | min delay (ms) | fan-out spread p50 / p99 / max (ms) | server CPU % of one core | server RSS (MB) | RSS per connection (KB) | load avg (1 min) |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"

for n in 0 $CLIENTS; do
  if [[ "$n" == 0 ]]; then
    # Baseline: the server alone for the same window.
    t0=$(cpu_ticks "$SERVER_PID"); s0=$(date +%s.%N)
    sleep "$DURATION"
    t1=$(cpu_ticks "$SERVER_PID"); s1=$(date +%s.%N)
    rss=$(rss_kb "$SERVER_PID")
    awk -v t0="$t0" -v t1="$t1" -v s0="$s0" -v s1="$s1" -v hz="$CLK_TCK" -v rss="$rss" \
        -v load="$(cut -d' ' -f1 /proc/loadavg)" \
      'BEGIN { printf "| 0 | – | – | – | – | – | – | %.2f | %.1f | – | %s |\n", 100 * (t1 - t0) / hz / (s1 - s0), rss / 1024, load }'
    continue
  fi
  # loadgen connects everyone, then reads for DURATION s: sample the server over the
  # reading window only, from loadgen's "reading for" line to its exit.
  "$LOADGEN_BIN" --url "ws://127.0.0.1:$PORT/ws/live" --clients "$n" --duration "$DURATION" \
    >"$WORK/lg.out" 2>"$WORK/lg.err" &
  LG_PID=$!
  until grep -q "reading for" "$WORK/lg.err" 2>/dev/null; do
    kill -0 "$LG_PID" 2>/dev/null || { cat "$WORK/lg.err" >&2; exit 1; }
    sleep 0.05
  done
  t0=$(cpu_ticks "$SERVER_PID"); s0=$(date +%s.%N)
  rss0=$(rss_kb "$SERVER_PID")
  wait "$LG_PID"
  t1=$(cpu_ticks "$SERVER_PID"); s1=$(date +%s.%N)
  head -1 "$WORK/lg.err" >&2
  line=$(cat "$WORK/lg.out")
  field() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$line"; }
  awk -v n="$n" -v cf="$(field connect_failed)" -v dr="$(field dropped)" \
      -v tf="$(field tick_frames)" -v p50="$(field p50_ms)" -v p99="$(field p99_ms)" \
      -v mx="$(field max_ms)" -v mn="$(field min_ms)" -v s50="$(field spread_p50_ms)" \
      -v s99="$(field spread_p99_ms)" -v smx="$(field spread_max_ms)" \
      -v t0="$t0" -v t1="$t1" -v s0="$s0" -v s1="$s1" \
      -v hz="$CLK_TCK" -v rss="$rss0" -v idle="$RSS_IDLE" \
      -v load="$(cut -d' ' -f1 /proc/loadavg)" \
    'BEGIN { printf "| %d | %s | %s | %s | %s / %s / %s | %s | %s / %s / %s | %.2f | %.1f | %.1f | %s |\n",
             n, cf, dr, tf, p50, p99, mx, mn, s50, s99, smx,
             100 * (t1 - t0) / hz / (s1 - s0), rss / 1024, (rss - idle) / n, load }'
  sleep "$SETTLE"
done
