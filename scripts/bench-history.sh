#!/usr/bin/env bash
# Bytes per sample of the history on disk, on this host's real data: runs perfpilot
# (release) with a fresh data directory for DURATION seconds (long enough to fill raw
# chunks of 10 minutes), stops it cleanly (a last flush), then prints
# `perfpilot history stats` and perfpilot's RSS at the start and at the end.
#
# Environment: DURATION=900  SKIP_BUILD=1  PERFPILOT_BIN=target/release/perfpilot
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-900}
PERFPILOT_BIN=${PERFPILOT_BIN:-target/release/perfpilot}
if [[ -z "${SKIP_BUILD:-}" ]]; then
  cargo build -q --release -p server
fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
dir=$(mktemp -d /tmp/bench-history.XXXX)
trap 'kill "$pp" 2>/dev/null || true; rm -rf "$dir"' EXIT
RUST_LOG=warn "$PERFPILOT_BIN" --listen "127.0.0.1:$(free_port)" --metrics-listen off \
  --data-dir "$dir" >/dev/null 2>&1 &
pp=$!
sleep 5
rss_start=$(awk '/VmRSS/ {print $2}' "/proc/$pp/status")
sleep "$DURATION"
rss_end=$(awk '/VmRSS/ {print $2}' "/proc/$pp/status")
kill -TERM "$pp"; wait "$pp" 2>/dev/null || true
"$PERFPILOT_BIN" --data-dir "$dir" history stats | head -8
echo "RSS: ${rss_start} KiB after 5 s, ${rss_end} KiB after $((DURATION + 5)) s ($(nproc) cores, load: $(uptime | sed 's/.*load average/load average/'))"
