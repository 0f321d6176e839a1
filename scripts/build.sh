#!/usr/bin/env bash
# Builds the browser bundle into target/site and the server binary.
# Usage: scripts/build.sh [release|debug|bundle]   (the profile of the server, or only the
# bundle; the wasm is always built with the size-optimised wasm-release profile, which is
# what users download)
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
# keep the function table and memory exports the chunks link against). All of it lives in
# pkg/<hash of its files>/ so browsers may cache every file forever.
css_hash=$(sha256sum style/main.css | cut -c1-12)

staging=$(mktemp -d target/site.XXXXXX)
chmod 755 "$staging"
out="$staging/pkg/unnamed"
mkdir -p "$out"
log "Splitting the bundle into per-page chunks"
cargo run -q -p splitter -- "$wasm_in" "$out"
wasm-bindgen --target web --no-typescript --remove-name-section --keep-lld-exports \
  --out-name perfpilot --out-dir "$out" "$out/main.wasm"
rm "$out/main.wasm"
# Named after the bytes browsers get, so no URL under pkg/ ever changes content (a new
# splitter or wasm-bindgen with the same wasm input gets a new directory too).
bundle=$(cd "$out" && find . -type f | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-12)
mv "$out" "$staging/pkg/$bundle"
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
# directory, so the two most recent other bundles stay.
if [ -d "$site/pkg" ]; then
  find "$site/pkg" -mindepth 1 -maxdepth 1 -type d -printf '%T@ %f\n' | sort -rn |
    cut -d' ' -f2 | { grep -vx "$bundle" || true; } | head -n 2 | while read -r name; do
      mv "$site/pkg/$name" "$staging/pkg/$name"
    done
fi
rm -rf "$site"
mv "$staging" "$site"
log "Site assets in $site/pkg/$bundle: $(find "$site/pkg/$bundle" -name '*.wasm' | wc -l) wasm files"

if [ "$server_profile" = bundle ]; then
  exit 0
fi
log "Building the server (perfpilot, $server_profile)"
if [ "$server_profile" = release ]; then
  cargo build -p server --release
else
  cargo build -p server
fi
