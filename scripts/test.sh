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

log "tests (unit, integration, browser end-to-end)"
export PERFPILOT_BIN="$PWD/target/debug/perfpilot"
export PERFPILOT_SITE_ROOT="$PWD/target/site"
out=$(mktemp)
set +e
cargo test -p engine -p connectors -p app -p server -p tests -p splitter 2>&1 | tee "$out"
status=${PIPESTATUS[0]}
set -e
passed=$(grep -Eo 'test result: .* ([0-9]+) passed' "$out" | grep -Eo '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed;' "$out" | awk '{s+=$1} END {print s+0}')
rm -f "$out"
echo
echo "tests: $passed passed, $failed failed"
exit "$status"
