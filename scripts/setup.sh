#!/usr/bin/env bash
# Installs what building and testing perfpilot needs, and nothing that is already there.
# Usage: scripts/setup.sh [--test]   (--test adds the browser and other test-only tools)
# Only the package registries are used: crates.io (wasm-bindgen-cli) and Debian (apt).
set -euo pipefail
cd "$(dirname "$0")/.."

WASM_BINDGEN_VERSION=0.2.130

log() { printf '\033[1;34m==>\033[0m %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

ensure_wasm_target() {
  if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    log "Installing the wasm32-unknown-unknown Rust target"
    rustup target add wasm32-unknown-unknown
  fi
}

ensure_wasm_bindgen() {
  if ! command -v wasm-bindgen >/dev/null || [ "$(wasm-bindgen --version | awk '{print $2}')" != "$WASM_BINDGEN_VERSION" ]; then
    # Not --locked: the CLI's packaged lock pins a yanked crate and fails to build.
    log "Installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (about 5 minutes, once)"
    cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
  fi
}

ensure_apt() {
  local missing=()
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    log "Installing Debian packages: ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

ensure_wasm_target
ensure_wasm_bindgen
ensure_apt gzip brotli
if [ "${1:-}" = "--test" ]; then
  # The tests start their own throwaway PostgreSQL cluster; Debian's package must not
  # create (or start) a system one.
  if ! dpkg -s postgresql-15 >/dev/null 2>&1; then
    as_root mkdir -p /etc/postgresql-common
    echo 'create_main_cluster = false' | as_root tee -a /etc/postgresql-common/createcluster.conf >/dev/null
  fi
  # Redis, memcached, Alertmanager, HAProxy, node_exporter and MariaDB ship init scripts; PID 1 is not systemd here, so
  # without a policy-rc.d that refuses, installing them would start daemons on their
  # default ports. The tests start their own instances on free loopback ports (MariaDB
  # with its own data directory; the package's /var/lib/mysql is never used).
  if ! dpkg -s redis-server memcached prometheus-alertmanager haproxy prometheus-node-exporter mariadb-server mariadb-client >/dev/null 2>&1; then
    restore_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
      as_root chmod +x /usr/sbin/policy-rc.d
      restore_policy=1
    fi
    ensure_apt redis-server memcached prometheus-alertmanager haproxy prometheus-node-exporter mariadb-server mariadb-client
    if [ "$restore_policy" = 1 ]; then as_root rm -f /usr/sbin/policy-rc.d; fi
  fi
  ensure_apt chromium chromium-driver prometheus nginx postgresql-15 postgresql-15-hypopg dnsmasq-base
fi
