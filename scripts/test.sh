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

phase "clippy+build"
# The size-optimised wasm bundle builds meanwhile: its last steps (the app crate, one
# codegen unit under LTO) keep one core busy while the other is idle, and the host build
# below fills it. Its own profile directories, so neither waits for the other's lock;
# scripts/build.sh below finds it built (and reports its errors if it failed).
bundle_log=$(mktemp)
cargo build -p frontend --target wasm32-unknown-unknown --profile wasm-release >"$bundle_log" 2>&1 &
bundle_pid=$!
trap 'kill "$bundle_pid" 2>/dev/null || true; rm -f "$bundle_log"' EXIT
# The host crates are linted by the build that makes their test binaries: clippy-driver
# compiles the workspace's crates (what `cargo clippy` does, with code generated too), so
# the dependencies compile once, for the tests, instead of once more in check mode for
# `cargo clippy` (about three minutes of a cold run on two cores). Same lints, same
# `-D warnings`, every target (tests, benches, examples). run-tests.py runs with the same
# wrapper, so it finds the binaries fresh; nothing else does (the bundle must not be
# built by clippy's driver, which turns MIR optimisations off).
lint_build=(env RUSTC_WORKSPACE_WRAPPER=clippy-driver CLIPPY_ARGS=-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__)
log "clippy (host crates), building the test binaries"
"${lint_build[@]}" cargo test --no-run --all-targets -p engine -p connectors -p app -p server -p tests -p splitter
log "clippy (browser crates, wasm32)"
cargo clippy -p frontend --target wasm32-unknown-unknown -- -D warnings
cargo clippy -p engine --no-default-features --target wasm32-unknown-unknown -- -D warnings

phase build
wait "$bundle_pid" || true
rm -f "$bundle_log"
# Only the bundle here: the host build above made the debug server too (cargo builds a
# package's binaries for its integration tests).
scripts/build.sh bundle

log "bundle budget (bundle-budget.json: per page, first visit)"
set +e
budget_report=$(python3 scripts/bundle-budget.py)
budget_status=$?
set -e
echo "$budget_report"

phase tests
log "tests (unit, integration, browser end-to-end; several test binaries at a time)"
export PERFPILOT_BIN="$PWD/target/debug/perfpilot"
export PERFPILOT_SITE_ROOT="$PWD/target/site"
out=$(mktemp)
set +e
"${lint_build[@]}" python3 scripts/run-tests.py -p engine -p connectors -p app -p server -p tests -p splitter 2>&1 | tee "$out"
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
