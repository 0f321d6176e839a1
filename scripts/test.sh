#!/usr/bin/env bash
# Sets everything up and runs every check: formatting, clippy (host crates and the wasm
# crate), unit and integration tests, and the browser end-to-end tests in headless
# Chromium. Ends with one summary line: "tests: N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\033[1;34m==>\033[0m %s\n' "$*"; }

scripts/setup.sh --test

log "cargo fmt --check"
cargo fmt --all --check

log "clippy (host crates)"
cargo clippy -p engine -p connectors -p app -p server -p tests -p splitter --all-targets -- -D warnings
log "clippy (browser crates, wasm32)"
cargo clippy -p frontend --target wasm32-unknown-unknown -- -D warnings
cargo clippy -p engine --no-default-features --target wasm32-unknown-unknown -- -D warnings

scripts/build.sh debug

log "bundle budget (bundle-budget.json: per page, first visit)"
set +e
budget_report=$(python3 scripts/bundle-budget.py)
budget_status=$?
set -e
echo "$budget_report"

log "tests (unit, integration, browser end-to-end)"
export PERFPILOT_BIN="$PWD/target/debug/perfpilot"
export PERFPILOT_SITE_ROOT="$PWD/target/site"
packages=(-p engine -p connectors -p app -p server -p tests -p splitter)
# Mostly waiting on real minutes (a silence, quiet hours, repeats), this test runs beside the
# rest instead of after it; the binary is started directly, so the cargo lock is not held.
slow_test=silences_acknowledgements_repeats_quiet_hours_and_failed_deliveries
alerts_bin=$(cargo test -p tests --test alerts --no-run --message-format=json |
    python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "alerts":
        print(m["executable"])')
out=$(mktemp)
slow_out=$(mktemp)
(cd tests && "$alerts_bin" --exact "$slow_test" >"$slow_out" 2>&1) &
slow_pid=$!
set +e
cargo test --no-fail-fast "${packages[@]}" -- --skip "$slow_test" 2>&1 | tee "$out"
status=${PIPESTATUS[0]}
wait "$slow_pid"
slow_status=$?
set -e
echo
echo "     Running the alerts test that ran beside the others ($slow_test)"
cat "$slow_out"
cat "$slow_out" >>"$out"
if [ "$slow_status" -ne 0 ] && [ "$status" -eq 0 ]; then
    status=$slow_status
fi
if [ "$budget_status" -ne 0 ] && [ "$status" -eq 0 ]; then
    status=$budget_status
fi
passed=$(grep -Eo 'test result: .* ([0-9]+) passed' "$out" | grep -Eo '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed;' "$out" | awk '{s+=$1} END {print s+0}')
rm -f "$out" "$slow_out"
echo
echo "$budget_report" | grep -E '^(bundle budget|over budget)'
echo "tests: $passed passed, $failed failed"
exit "$status"
