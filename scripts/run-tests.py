#!/usr/bin/env python3
"""Runs the workspace's test binaries, two at a time, and prints each one's output whole.

`cargo test` runs its test binaries one after another; ours mostly wait (on Chromium, on
real services, on real seconds), so two at a time on this 2-core machine halves the wait.
Binaries that measure timing or noise (`SOLO`) run alone after the others, so no other
test disturbs what they measure. Each binary runs from its package's directory, as cargo
runs it. Output is printed per binary when it ends, never interleaved, with its run time.

Usage: scripts/run-tests.py [cargo test selection args...]
    e.g. scripts/run-tests.py -p engine -p tests
Extra arguments after `--` go to every test binary (e.g. `-- --skip slow_name`).
Environment: PERFPILOT_TEST_JOBS (default 2).
Prints "tests: N passed, N failed" last; exits non-zero when anything failed.
"""
import json
import os
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

# Measure timing, noise or CPU use (the host collector's busy-loop test wants the
# machine's cores to itself): alone, at the end.
SOLO = {"verdicts", "connectors"}
# Longest first, so the pool does not end with one long binary running alone.
LONGEST_FIRST = ["alerts", "history", "lb", "resource", "browser", "actions", "fleet", "cache", "mysql",
                 "postgres", "proof", "durable", "dashboard", "changes", "access", "nginx"]


def test_binaries(selection):
    built = subprocess.run(
        ["cargo", "test", "--no-run", "--message-format=json", *selection],
        stdout=subprocess.PIPE, text=True,
    )
    messages = [json.loads(line) for line in built.stdout.splitlines() if line.startswith("{")]
    if built.returncode != 0:
        # With JSON output cargo keeps the compiler's errors on stdout: print them, or a
        # failed build says only "could not compile" and why is lost.
        for message in messages:
            if message.get("reason") == "compiler-message":
                print(message["message"].get("rendered", ""), flush=True)
        print("tests: 0 passed, 1 failed (the test binaries did not build)", flush=True)
        sys.exit(built.returncode or 1)
    found = []
    for message in messages:
        if message.get("reason") != "compiler-artifact" or not message.get("executable"):
            continue
        if not message.get("profile", {}).get("test"):
            continue
        target = message["target"]
        label = f"{message['package_id'].split('#')[0].rsplit('/', 1)[-1]}::{target['name']} ({target['kind'][0]})"
        found.append({
            "name": target["name"],
            "label": label,
            "exe": message["executable"],
            "cwd": os.path.dirname(message["manifest_path"]),
        })
    return found


def order(binaries):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    return sorted(binaries, key=lambda b: rank.get(b["name"], len(rank)))


print_lock = threading.Lock()


# What `cargo test` would set from .cargo/config.toml's [env] (the binaries run here
# without cargo): test threads with the server workers' 8 MiB stack, since a debug
# build's server render of the deepest pages needs more than libtest's 2 MiB.
TEST_ENV = {**os.environ, "RUST_MIN_STACK": os.environ.get("RUST_MIN_STACK", str(8 * 1024 * 1024))}


def run(binary, extra):
    started = time.monotonic()
    done = subprocess.run([binary["exe"], *extra], cwd=binary["cwd"], env=TEST_ENV,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          errors="replace")
    took = time.monotonic() - started
    with print_lock:
        print(f"     Running {binary['label']} ({took:.1f} s)", flush=True)
        print(done.stdout, flush=True)
    return binary, done.returncode, done.stdout, took


def main():
    args = sys.argv[1:]
    extra = []
    if "--" in args:
        cut = args.index("--")
        args, extra = args[:cut], args[cut + 1:]
    jobs = int(os.environ.get("PERFPILOT_TEST_JOBS", "2"))
    binaries = test_binaries(args)
    pooled = order([b for b in binaries if b["name"] not in SOLO])
    solo = [b for b in binaries if b["name"] in SOLO]
    results = []
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        results.extend(pool.map(lambda b: run(b, extra), pooled))
    for binary in solo:
        results.append(run(binary, extra))

    passed = failed = 0
    failing = []
    for binary, code, output, _ in results:
        for p, f in re.findall(r"test result: \w+\. (\d+) passed; (\d+) failed", output):
            passed += int(p)
            failed += int(f)
        if code != 0:
            failing.append(binary["label"])
            # A binary that crashed before its summary still counts as a failure.
            if not re.search(r"test result: FAILED", output):
                failed += 1
    print("\nslowest:", ", ".join(f"{b['name']} {t:.0f} s" for b, _, _, t in
                                   sorted(results, key=lambda r: -r[3])[:6]))
    for label in failing:
        print(f"failed: {label}")
    print(f"tests: {passed} passed, {failed} failed")
    sys.exit(1 if failing else 0)


main()
