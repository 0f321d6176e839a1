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

# The bundle is split at the app's lazy routes (app/src/lib.rs) into what every page needs
# and per-page chunks (splitter/), then the main part goes through wasm-bindgen (which must
# keep the function table and memory exports the chunks link against). All of it
# lives in pkg/<hash of the linked wasm>/ so browsers may cache every file forever.
bundle=$(sha256sum "$wasm_in" | cut -c1-12)
css_hash=$(sha256sum style/main.css | cut -c1-12)

staging=$(mktemp -d target/site.XXXXXX)
chmod 755 "$staging"
out="$staging/pkg/$bundle"
mkdir -p "$out"
log "Splitting the bundle into per-page chunks"
cargo run -q -p splitter -- "$wasm_in" "$out"
wasm-bindgen --target web --no-typescript --remove-name-section --keep-lld-exports \
  --out-name perfpilot --out-dir "$out" "$out/main.wasm"
rm "$out/main.wasm"
cp style/main.css "$staging/pkg/perfpilot-$css_hash.css"
cp -r public/. "$staging/"
# Compressed once here at the highest levels, so the server never compresses the bundle
# per request and users download the smallest files (ServeDir picks .br/.gz by
# Accept-Encoding).
find "$staging/pkg" -type f \( -name '*.wasm' -o -name '*.js' -o -name '*.css' \) | while read -r f; do
  gzip -9 -k -n "$f"
  brotli -q 11 -k "$f"
done
printf '{"bundle_dir":"%s","output_name":"perfpilot","stylesheet":"%s"}\n' \
  "$bundle" "perfpilot-$css_hash.css" > "$staging/assets.json"
# Tabs opened before this build keep fetching their pages' chunks from their own bundle
# directory, so the two most recent previous bundles stay.
if [ -d "$site/pkg" ]; then
  for previous in $(ls -dt "$site"/pkg/*/ 2>/dev/null | head -n 2); do
    name=$(basename "$previous")
    [ -e "$staging/pkg/$name" ] || mv "$previous" "$staging/pkg/$name"
  done
fi
rm -rf "$site"
mv "$staging" "$site"
log "Site assets in $site/pkg/$bundle: $(find "$site/pkg/$bundle" -name '*.wasm' | wc -l) wasm files"

log "Building the server (perfpilot, $server_profile)"
if [ "$server_profile" = release ]; then
  cargo build -p server --release
else
  cargo build -p server
fi
