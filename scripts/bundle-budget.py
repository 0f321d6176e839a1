#!/usr/bin/env python3
"""Holds every page's first visit to its budget: brotli bytes and requests.

A first visit downloads the page's HTML, the stylesheet, the shell (wasm-bindgen glue, main
module, wasm-split loader) and the page's own chunks from splitter's page_chunks.json;
bytes are the brotli-compressed sizes the server sends (the HTML is not counted: it is
rendered per request). The budget lives in bundle-budget.json next to the workspace's
Cargo.toml and is only ever lowered: `--lower` writes the measured numbers where they are
below the budget, never above. Byte budgets were set 2 % above a measurement (rounded up to
a KiB): the bundle embeds source paths of dependencies, which differ between machines by a
few bytes. Request budgets are 16 on every page, the most the splitter allows (its
MAX_SHARED_CHUNKS_PER_PAGE of 10 shared chunks, the page's own module, the two scripts, the
main module, the stylesheet and the HTML): which shared chunks get merged follows code
sizes, so a page's exact count may move by one with any change.

Usage: scripts/bundle-budget.py [--lower] [BUNDLE_DIR]
Exit status 1 when a page is over its budget or a page has no budget.
"""
import json
import os
import subprocess
import sys

BUDGET_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bundle-budget.json")


def brotli_size(path, cache={}):
    if path not in cache:
        data = open(path, "rb").read()
        cache[path] = len(
            subprocess.run(["brotli", "-q", "11", "-c"], input=data, capture_output=True, check=True).stdout
        )
    return cache[path]


def measure(bundle, site):
    pages = json.load(open(os.path.join(bundle, "page_chunks.json")))
    shell = [
        os.path.join(d, f)
        for d, _, files in os.walk(bundle)
        for f in files
        if f.endswith(".js")
    ] + [os.path.join(bundle, f) for f in os.listdir(bundle) if f.endswith("_bg.wasm")]
    pkg = os.path.join(site, "pkg")
    css = [os.path.join(pkg, f) for f in os.listdir(pkg) if f.endswith(".css")]
    measured = {}
    for name, files in sorted(pages.items()):
        paths = shell + css + [os.path.join(bundle, f) for f in files]
        measured[name.removesuffix("_route")] = {
            "brotli_bytes": sum(brotli_size(p) for p in paths),
            # The HTML document is one more request.
            "requests": len(paths) + 1,
        }
    return measured


def main():
    args = [a for a in sys.argv[1:] if a != "--lower"]
    lower = "--lower" in sys.argv[1:]
    site = "target/site"
    if args:
        bundle = args[0]
    else:
        assets = json.load(open(os.path.join(site, "assets.json")))
        bundle = os.path.join(site, "pkg", assets["bundle_dir"])
    budget = json.load(open(BUDGET_FILE))
    measured = measure(bundle, site)
    over = []
    print("| page, first visit | brotli bytes (budget) | requests (budget) |")
    print("|---|---|---|")
    for page, now in measured.items():
        limit = budget["pages"].get(page)
        if limit is None:
            over.append(f"{page}: no budget in bundle-budget.json")
            print(f"| {page} | {now['brotli_bytes']:,} (none) | {now['requests']} (none) |")
            continue
        for key in ("brotli_bytes", "requests"):
            if now[key] > limit[key]:
                over.append(f"{page}: {key} {now[key]:,} is over its budget of {limit[key]:,}")
            elif lower:
                limit[key] = now[key]
        print(
            f"| {page} | {now['brotli_bytes']:,} ({limit['brotli_bytes']:,}) "
            f"| {now['requests']} ({limit['requests']}) |"
        )
    if lower and not over:
        with open(BUDGET_FILE, "w") as f:
            json.dump(budget, f, indent=2, sort_keys=True)
            f.write("\n")
    worst = max(measured.items(), key=lambda kv: kv[1]["brotli_bytes"])
    print(
        f"bundle budget: {len(measured) - len(over)} of {len(measured)} pages within; largest first visit "
        f"{worst[0]} {worst[1]['brotli_bytes']:,} B brotli in {worst[1]['requests']} requests"
    )
    for line in over:
        print(f"over budget: {line}")
    sys.exit(1 if over else 0)


main()
