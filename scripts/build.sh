#!/usr/bin/env bash
# Builds the browser bundle into target/site and the server binary.
# Usage: scripts/build.sh [release|debug]   (the profile of the server; the wasm is always
# built with the size-optimised wasm-release profile, which is what users download)
set -euo pipefail
cd "$(dirname "$0")/.."

server_profile=${1:-release}
site=target/site
wasm_in=target/wasm32-unknown-unknown/wasm-release/frontend.wasm

log() { printf '\033[1;34m==>\033[0m %s\n' "$*"; }

log "Building the browser bundle (frontend, wasm-release)"
cargo build -p frontend --target wasm32-unknown-unknown --profile wasm-release

# Every /pkg file is named after its content so browsers may cache it forever.
wasm_hash=$(sha256sum "$wasm_in" | cut -c1-12)
css_hash=$(sha256sum style/main.css | cut -c1-12)
name="perfpilot-$wasm_hash"

staging=$(mktemp -d target/site.XXXXXX)
chmod 755 "$staging"
mkdir -p "$staging/pkg"
wasm-bindgen --target web --no-typescript --remove-name-section \
  --out-name "$name" --out-dir "$staging/pkg" "$wasm_in"
cp style/main.css "$staging/pkg/perfpilot-$css_hash.css"
cp -r public/. "$staging/"
# Compressed once here at the highest levels, so the server never compresses the bundle
# per request and users download the smallest files (ServeDir picks .br/.gz by
# Accept-Encoding).
for f in "$staging"/pkg/*; do
  gzip -9 -k -n "$f"
  brotli -q 11 -k "$f"
done
printf '{"output_name":"%s","stylesheet":"%s"}\n' "$name" "perfpilot-$css_hash.css" > "$staging/assets.json"
rm -rf "$site"
mv "$staging" "$site"
log "Site assets in $site: $(cd "$site/pkg" && ls | tr '\n' ' ')"

log "Building the server (perfpilot, $server_profile)"
if [ "$server_profile" = release ]; then
  cargo build -p server --release
else
  cargo build -p server
fi
