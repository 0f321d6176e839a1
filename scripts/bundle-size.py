#!/usr/bin/env python3
"""What a visit to each page downloads from the split browser bundle, compressed.

Reads the bundle directory `scripts/build.sh` writes (target/site/pkg/<hash>/): the
wasm-bindgen glue, main module and wasm-split loader every page needs, and for each page
the chunks `splitter` lists for it in page_chunks.json. Sizes are of the files as built (raw) and compressed with brotli -q 11 and gzip -9,
which is what the server sends.
Usage: scripts/bundle-size.py [BUNDLE_DIR]   (default: the one in target/site/assets.json)
"""
import gzip
import json
import os
import subprocess
import sys


def sizes(path, cache={}):
    if path not in cache:
        data = open(path, "rb").read()
        br = subprocess.run(["brotli", "-q", "11", "-c"], input=data, capture_output=True, check=True).stdout
        cache[path] = (len(data), len(gzip.compress(data, 9, mtime=0)), len(br))
    return cache[path]


def total(paths):
    return tuple(sum(sizes(p)[i] for p in paths) for i in range(3))


def main():
    if len(sys.argv) > 1:
        bundle = sys.argv[1]
    else:
        assets = json.load(open("target/site/assets.json"))
        bundle = os.path.join("target/site/pkg", assets["bundle_dir"])
    # splitter's list of the files each page's route needs (its own chunk and shared ones).
    pages = json.load(open(os.path.join(bundle, "page_chunks.json")))
    # wasm-bindgen puts inline JS of dependencies under snippets/; it loads with the glue.
    js = [
        os.path.relpath(os.path.join(d, f), bundle)
        for d, _, files in os.walk(bundle)
        for f in files
        if f.endswith(".js")
    ]
    main_wasm = [f for f in os.listdir(bundle) if f.endswith("_bg.wasm")]
    shell = [os.path.join(bundle, f) for f in js + main_wasm]

    def row(label, paths):
        raw, gz, br = total(paths)
        print(f"| {label} | {raw:,} | {gz:,} | {br:,} |")

    print("| Download | raw | gzip | brotli |")
    print("|---|---|---|---|")
    for f in shell:
        row(os.path.basename(f), [f])
    row("**shell total** (every page)", shell)
    for name, files in sorted(pages.items()):
        paths = [os.path.join(bundle, f) for f in files]
        label = name.removesuffix("_route")
        row(f"{label} page: its chunks ({len(files)} files)", paths)
        row(f"**{label} page, first visit** (shell + chunks)", shell + paths)
    everything = [os.path.join(bundle, f) for f in js] + [
        os.path.join(bundle, f) for f in os.listdir(bundle) if f.endswith(".wasm")
    ]
    row("everything (all pages)", everything)


main()
