#!/usr/bin/env python3
"""Runs the workspace's test binaries, three at a time, and prints each one's output whole.

`cargo test` runs its test binaries one after another; ours mostly wait (on Chromium, on
real services, on real seconds), so three at a time on this 2-core machine cuts the wait
(the pooled binaries took 274 s two at a time and 214 s three at a time, session 18).
Binaries that measure timing or noise (`SOLO`) run alone after the others, so no other
test disturbs what they measure. Each binary runs from its package's directory, as cargo
runs it. Output is printed per binary when it ends, never interleaved: each test with its
run time (libtest's JSON events), the failures' output, the binary's own time. Every
test's time and outcome also goes to target/test-results/junit.xml.

Usage: scripts/run-tests.py [cargo test selection args...]
    e.g. scripts/run-tests.py -p engine -p tests
Extra arguments after `--` go to every test binary (e.g. `-- --skip slow_name`).
Environment: PERFPILOT_TEST_JOBS (default 3).
Prints "tests: N passed, N failed" last; exits non-zero when anything failed.
"""
import json
import os
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
import time
from concurrent.futures import ThreadPoolExecutor

# Measure timing, noise or CPU use (the host collector's busy-loop test wants the
# machine's cores to itself): alone, at the end.
SOLO = {"verdicts", "connectors"}
# Longest first, so the pool does not end with one long binary running alone.
LONGEST_FIRST = ["alerts", "history", "lb", "resource", "replicas", "browser", "actions", "fleet", "cache", "mysql",
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
# RUSTC_BOOTSTRAP=1 (for the test processes only, never for a compiler) lets stable
# libtest report each test as a JSON event with its run time: per-test timings without
# building cargo-nextest on every clean machine (minutes on two cores, and no prebuilt
# binary can be downloaded here).
TEST_ENV = {
    **os.environ,
    "RUST_MIN_STACK": os.environ.get("RUST_MIN_STACK", str(8 * 1024 * 1024)),
    "RUSTC_BOOTSTRAP": "1",
}
JSON_ARGS = ["-Z", "unstable-options", "--format", "json", "--report-time"]


class Result:
    """One binary's run: its tests (name, outcome, seconds, output) and what else it printed."""

    def __init__(self, binary, code, took, stdout, stderr):
        self.binary, self.code, self.took = binary, code, took
        self.tests = []  # (name, "ok" | "failed" | "ignored", seconds, captured output)
        self.other = []  # lines that were no libtest event (a child process's output)
        self.finished = False
        for line in stdout.splitlines():
            event = None
            if line.startswith("{"):
                try:
                    event = json.loads(line)
                except ValueError:
                    pass
            if not isinstance(event, dict) or "type" not in event:
                self.other.append(line)
                continue
            # ("timeout" is libtest's warning that a test has run for a minute; its end
            # comes later as ok or failed.)
            if event["type"] == "test" and event["event"] in ("ok", "failed", "ignored"):
                self.tests.append((event["name"], event["event"], float(event.get("exec_time", 0.0)),
                                   event.get("stdout", "")))
            elif event["type"] == "suite" and event["event"] in ("ok", "failed"):
                self.finished = True
        self.other.extend(stderr.splitlines())

    def count(self, outcome):
        return sum(1 for t in self.tests if t[1] == outcome)

    def failed(self):
        """Failed tests, plus one when the binary ended without its summary (a crash)."""
        crashed = self.code != 0 and (not self.finished or self.count("failed") == 0)
        return self.count("failed") + (1 if crashed else 0)

    def report(self):
        lines = [f"     Running {self.binary['label']} ({self.took:.1f} s)"]
        for name, outcome, secs, _ in self.tests:
            lines.append(f"test {name} ... {outcome} ({secs:.2f} s)")
        for name, outcome, _, output in self.tests:
            if outcome == "failed":
                lines += [f"---- {name} stdout ----", output.rstrip()]
        if self.code != 0 and self.other:
            lines += ["---- printed outside the tests ----", *self.other]
        verdict = "ok" if self.code == 0 else "FAILED"
        lines.append(f"test result: {verdict}. {self.count('ok')} passed; {self.failed()} failed; "
                     f"{self.count('ignored')} ignored; finished in {self.took:.2f}s")
        return "\n".join(lines) + "\n"


def run(binary, extra):
    started = time.monotonic()
    done = subprocess.run([binary["exe"], *JSON_ARGS, *extra], cwd=binary["cwd"], env=TEST_ENV,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          errors="replace")
    result = Result(binary, done.returncode, time.monotonic() - started, done.stdout, done.stderr)
    with print_lock:
        print(result.report(), flush=True)
    return result


def write_junit(results, path):
    """Every test with its time and outcome, as JUnit XML (CI tools and people can sort it)."""
    suites = ET.Element("testsuites")
    for r in results:
        suite = ET.SubElement(suites, "testsuite", name=r.binary["label"], tests=str(len(r.tests)),
                              failures=str(r.failed()), skipped=str(r.count("ignored")),
                              time=f"{r.took:.3f}")
        for name, outcome, secs, output in r.tests:
            case = ET.SubElement(suite, "testcase", classname=r.binary["label"], name=name,
                                 time=f"{secs:.3f}")
            if outcome == "failed":
                ET.SubElement(case, "failure", message="failed").text = output
            elif outcome == "ignored":
                ET.SubElement(case, "skipped")
        if r.failed() > r.count("failed"):
            case = ET.SubElement(suite, "testcase", classname=r.binary["label"], name="(the binary)",
                                 time=f"{r.took:.3f}")
            ET.SubElement(case, "failure", message=f"exited with {r.code} before its summary").text = \
                "\n".join(r.other)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    ET.ElementTree(suites).write(path, encoding="utf-8", xml_declaration=True)


def main():
    args = sys.argv[1:]
    extra = []
    if "--" in args:
        cut = args.index("--")
        args, extra = args[:cut], args[cut + 1:]
    jobs = int(os.environ.get("PERFPILOT_TEST_JOBS", "3"))
    binaries = test_binaries(args)
    pooled = order([b for b in binaries if b["name"] not in SOLO])
    solo = [b for b in binaries if b["name"] in SOLO]
    results = []
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        results.extend(pool.map(lambda b: run(b, extra), pooled))
    for binary in solo:
        results.append(run(binary, extra))

    junit = os.path.join("target", "test-results", "junit.xml")
    write_junit(results, junit)
    passed = sum(r.count("ok") for r in results)
    failed = sum(r.failed() for r in results)
    print("\nslowest binaries:", ", ".join(f"{r.binary['name']} {r.took:.0f} s" for r in
                                          sorted(results, key=lambda r: -r.took)[:6]))
    tests = sorted(((secs, r.binary["name"], name) for r in results for name, _, secs, _ in r.tests),
                   reverse=True)[:8]
    print("slowest tests:", ", ".join(f"{b}::{n.rsplit('::', 1)[-1]} {s:.0f} s" for s, b, n in tests))
    print(f"every test's time: {junit}")
    for r in results:
        if r.code != 0:
            print(f"failed: {r.binary['label']}")
    print(f"tests: {passed} passed, {failed} failed")
    sys.exit(1 if any(r.code != 0 for r in results) else 0)


main()
