#!/usr/bin/env bash
# Sets everything up and runs every check: formatting, clippy (host crates and the wasm
# crate), unit and integration tests, and the browser end-to-end tests in headless
# Chromium. Ends with one summary line: "tests: N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."

# A one-off build (CI's clean clone) gains nothing from incremental state, which costs
# gigabytes of disk and some compile time; a developer's repeated runs keep it.
if [ -n "${CI:-}" ]; then export CARGO_INCREMENTAL=0; fi

log() { printf '\033[1;34m==>\033[0m %s\n' "$*"; }

# Each phase's wall time, printed with the summary (the cold run's budget is 12 minutes).
phases=()
phase_name=""
phase_start=$SECONDS
phase() {
  if [ -n "$phase_name" ]; then phases+=("$phase_name $((SECONDS - phase_start)) s"); fi
  phase_name=$1
  phase_start=$SECONDS
}

phase setup
scripts/setup.sh --test

phase fmt
log "cargo fmt --check"
cargo fmt --all --check

phase clippy
# The size-optimised wasm bundle builds meanwhile: its last steps (the app crate, one
# codegen unit under LTO) keep one core busy while the other is idle, and clippy's
# checks fill it. Its own profile directories, so neither waits for the other's lock;
# scripts/build.sh below finds it built (and reports its errors if it failed).
bundle_log=$(mktemp)
cargo build -p frontend --target wasm32-unknown-unknown --profile wasm-release >"$bundle_log" 2>&1 &
bundle_pid=$!
trap 'kill "$bundle_pid" 2>/dev/null || true; rm -f "$bundle_log"' EXIT
log "clippy (host crates)"
cargo clippy -p engine -p connectors -p app -p server -p tests -p splitter --all-targets -- -D warnings
log "clippy (browser crates, wasm32)"
cargo clippy -p frontend --target wasm32-unknown-unknown -- -D warnings
cargo clippy -p engine --no-default-features --target wasm32-unknown-unknown -- -D warnings

phase build
wait "$bundle_pid" || true
rm -f "$bundle_log"
# Only the bundle here: the test build below makes the debug server too (cargo builds a
# package's binaries for its integration tests), and there the tests crate compiles on
# the core the server's long serial chain (app, server) leaves idle.
scripts/build.sh bundle

log "bundle budget (bundle-budget.json: per page, first visit)"
set +e
budget_report=$(python3 scripts/bundle-budget.py)
budget_status=$?
set -e
echo "$budget_report"

phase tests
log "tests (unit, integration, browser end-to-end; two test binaries at a time)"
export PERFPILOT_BIN="$PWD/target/debug/perfpilot"
export PERFPILOT_SITE_ROOT="$PWD/target/site"
out=$(mktemp)
set +e
python3 scripts/run-tests.py -p engine -p connectors -p app -p server -p tests -p splitter 2>&1 | tee "$out"
status=${PIPESTATUS[0]}
set -e
if [ "$budget_status" -ne 0 ] && [ "$status" -eq 0 ]; then
    status=$budget_status
fi
summary=$(grep -E '^tests: ' "$out" | tail -1)
phase done
rm -f "$out"
echo
echo "$budget_report" | grep -E '^(bundle budget|over budget)'
printf 'phases:'; printf ' %s ·' "${phases[@]}"; echo " total $SECONDS s"
echo "disk: target/ $(du -sh target 2>/dev/null | cut -f1), $(df -h --output=avail . | tail -1 | tr -d ' ') free"
echo "${summary:-tests: 0 passed, 1 failed (the test runner did not finish)}"
exit "$status"
