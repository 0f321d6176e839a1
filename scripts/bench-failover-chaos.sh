#!/usr/bin/env bash
# Issue 29's 100 scripted failovers: the replicas test
# `failovers_mid_action_lose_no_edit_and_repeat_no_notification_or_action` with more rounds
# (4 in the suite). Real PostgreSQL, two perfpilot processes, a webhook receiver, a command
# action; the leader is killed (-9) or stopped (SIGTERM) in turn each round.
#   scripts/bench-failover-chaos.sh [rounds]      (default 100; ~3.5 s a round; LOG=file)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-100}"
LOG="${LOG:-/tmp/bench-failover-chaos.log}"
scripts/build.sh debug >/dev/null
PERFPILOT_FAILOVER_ROUNDS="$rounds" \
PERFPILOT_BIN="$PWD/target/debug/perfpilot" PERFPILOT_SITE_ROOT="$PWD/target/site" \
  cargo test -q -p tests --test replicas -- \
  failovers_mid_action_lose_no_edit_and_repeat_no_notification_or_action --exact --nocapture \
  >"$LOG" 2>&1 || status=$?
# Everything the replicas logged is in $LOG; the rounds and the verdict here.
grep -E "^round|failovers:|test result|panicked|assert|exited|error:" "$LOG" || true
exit "${status:-0}"
