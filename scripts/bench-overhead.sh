#!/usr/bin/env bash
# Collector overhead: perfpilot vs prometheus-node-exporter on this host.
#
# Each side runs alone for WARMUP + DURATION seconds; over the DURATION window we read the
# process's CPU time (utime + stime from /proc/PID/stat) and report it as % of one core,
# plus its peak RSS (VmHWM). node_exporter collects on scrape, so it is scraped at 1 Hz
# with curl on 127.0.0.1, the same rate perfpilot collects at by itself.
#
# Environment:
#   DURATION=60 WARMUP=5                 measurement window and warm-up, seconds
#   NODE_EXPORTER=/usr/bin/prometheus-node-exporter   NE_PORT=19100
#   PERFPILOT_BIN=...  PERFPILOT_ARGS=... the process to measure for perfpilot (default:
#                                         the connectors crate's collect_loop example, built here)
#   PERFPILOT_SCRAPE_URL=http://127.0.0.1:PORT/metrics   scrape perfpilot at 1 Hz too
#   PERFPILOT_LIVE_URL=ws://127.0.0.1:PORT/ws/live        keep a live dashboard open
#                                         (scripts/live-client.py) through warm-up and window
set -euo pipefail

DURATION=${DURATION:-60}
WARMUP=${WARMUP:-5}
NODE_EXPORTER=${NODE_EXPORTER:-/usr/bin/prometheus-node-exporter}
NE_PORT=${NE_PORT:-19100}
cd "$(dirname "$0")/.."

if [[ -z "${PERFPILOT_BIN:-}" ]]; then
  cargo build -q -p connectors --release --example collect_loop
  PERFPILOT_BIN=target/release/examples/collect_loop
  # Runs a little past the window, then prints its history summary and exits.
  PERFPILOT_ARGS=${PERFPILOT_ARGS:-$((WARMUP + DURATION + 2))}
fi
[[ -x "$NODE_EXPORTER" ]] || { echo "missing $NODE_EXPORTER (apt-get install prometheus-node-exporter)" >&2; exit 1; }
command -v curl >/dev/null || { echo "missing curl" >&2; exit 1; }

CLK_TCK=$(getconf CLK_TCK)
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# utime + stime in clock ticks; the command name may contain spaces, so cut after ')'.
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
peak_rss_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }

# measure PID LABEL [SCRAPE_URL] -> prints "LABEL CPU_PCT PEAK_RSS_MB SCRAPE_FAILURES"
measure() {
  local pid=$1 label=$2 url=${3:-} failures=0
  sleep "$WARMUP"
  kill -0 "$pid" 2>/dev/null || { echo "$label exited early" >&2; exit 1; }
  local t0 s0 t1 s1
  t0=$(cpu_ticks "$pid"); s0=$(date +%s.%N)
  for ((i = 0; i < DURATION; i++)); do
    local next
    next=$(awk -v s="$s0" -v i="$i" 'BEGIN { printf "%.3f", s + i + 1 }')
    if [[ -n "$url" ]]; then
      curl -fsS -o /dev/null --max-time 1 "$url" || failures=$((failures + 1))
    fi
    local now
    now=$(date +%s.%N)
    sleep "$(awk -v a="$next" -v b="$now" 'BEGIN { d = a - b; print (d > 0 ? d : 0) }')"
  done
  t1=$(cpu_ticks "$pid"); s1=$(date +%s.%N)
  local rss
  rss=$(peak_rss_kb "$pid")
  awk -v l="$label" -v t0="$t0" -v t1="$t1" -v s0="$s0" -v s1="$s1" -v hz="$CLK_TCK" \
      -v rss="$rss" -v f="$failures" \
    'BEGIN { printf "%s %.3f %.1f %d\n", l, 100 * (t1 - t0) / hz / (s1 - s0), rss / 1024, f }'
}

echo "measuring node_exporter ($("$NODE_EXPORTER" --version 2>&1 | head -1)) for ${DURATION}s..." >&2
"$NODE_EXPORTER" --web.listen-address="127.0.0.1:$NE_PORT" >"$WORK/ne.log" 2>&1 &
NE_PID=$!
PIDS+=("$NE_PID")
NE=$(measure "$NE_PID" node_exporter "http://127.0.0.1:$NE_PORT/metrics")
kill "$NE_PID"; wait "$NE_PID" 2>/dev/null || true

echo "measuring perfpilot ($PERFPILOT_BIN ${PERFPILOT_ARGS:-}) for ${DURATION}s..." >&2
# shellcheck disable=SC2086  # PERFPILOT_ARGS is a word list on purpose
"$PERFPILOT_BIN" ${PERFPILOT_ARGS:-} >"$WORK/pp.out" 2>"$WORK/pp.log" &
PP_PID=$!
PIDS+=("$PP_PID")
if [[ -n "${PERFPILOT_LIVE_URL:-}" ]]; then
  sleep 1
  python3 scripts/live-client.py "$PERFPILOT_LIVE_URL" "$((WARMUP + DURATION))" >"$WORK/live.out" 2>&1 &
  PIDS+=("$!")
fi
PP=$(measure "$PP_PID" perfpilot "${PERFPILOT_SCRAPE_URL:-}")
# The example exits on its own; the real server runs until told to stop.
kill "$PP_PID" 2>/dev/null || true
wait "$PP_PID" 2>/dev/null || true

read -r _ NE_CPU NE_RSS NE_FAIL <<<"$NE"
read -r _ PP_CPU PP_RSS PP_FAIL <<<"$PP"
echo
echo "| process | CPU % of one core | peak RSS (MB) | failed scrapes |"
echo "|---|---|---|---|"
echo "| node_exporter, scraped at 1 Hz | $NE_CPU | $NE_RSS | $NE_FAIL/$DURATION |"
PP_SCRAPES="n/a"
[[ -n "${PERFPILOT_SCRAPE_URL:-}" ]] && PP_SCRAPES="$PP_FAIL/$DURATION"
echo "| perfpilot ($(basename "$PERFPILOT_BIN")) | $PP_CPU | $PP_RSS | $PP_SCRAPES |"
awk -v a="$PP_CPU" -v b="$NE_CPU" -v c="$PP_RSS" -v d="$NE_RSS" \
  'BEGIN { printf "\nratio perfpilot / node_exporter: CPU %.2f, peak RSS %.2f\n", (b > 0 ? a / b : 0), (d > 0 ? c / d : 0) }'
if [[ -n "${PERFPILOT_LIVE_URL:-}" ]]; then
  sleep 2
  echo "dashboard: $(cat "$WORK/live.out" 2>/dev/null)"
fi
if [[ -s "$WORK/pp.out" ]]; then
  echo "perfpilot summary: $(tail -1 "$WORK/pp.out")"
fi
