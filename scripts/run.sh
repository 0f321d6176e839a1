#!/usr/bin/env bash
# Sets everything up, builds release and runs perfpilot on its embedded defaults
# (http://127.0.0.1:3000). Extra arguments go to perfpilot, e.g. --listen 0.0.0.0:8080.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh release
exec target/release/perfpilot --site-root target/site "$@"
