#!/usr/bin/env python3
"""What foresight costs with 100 series at 1 Hz: one release perfpilot (history on disk in
a temp dir), 100 pushed series with a target each, pushed once a second (half of them
rising toward their target, so their forecasts find a crossing; half noisy and flat).
Every minute the monitor refits each target's time-to-breach and recounts each card's
anomalies over the last hour (the 1-hour chart's band); perfpilot adds the time that work
takes to `perfpilot_foresight_seconds_total` on /metrics. Over DURATION seconds (after
WARMUP, so the first refits and the reads of older history are behind it) this prints that
time as a share of one core, next to the whole process's CPU share (utime + stime of
/proc/PID/stat) and its peak RSS.

Before the window, each series gets the hour before it pushed at 1 s (BACKFILL=1), so the
band judges a full hour and the forecasts fit a real trend, as in steady state.

Environment: SERIES=100  DURATION=180  WARMUP=70  BACKFILL=1
             PERFPILOT_BIN=target/release/perfpilot
             SKIP_BUILD=1 (use the binary as it is)
"""
import json
import math
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERIES = int(os.environ.get("SERIES", "100"))
DURATION = int(os.environ.get("DURATION", "180"))
WARMUP = int(os.environ.get("WARMUP", "70"))
BIN = os.environ.get("PERFPILOT_BIN", os.path.join(ROOT, "target/release/perfpilot"))
BACKFILL = os.environ.get("BACKFILL", "1") == "1"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def post(port, path, body):
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as err:
        raise SystemExit(f"POST {path}: {err.code} {err.read()[:400]!r}")


def metric(port, name):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise SystemExit(f"{name} not on /metrics")


def cpu_secs(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def value(i, t, rng):
    """Series i at second t: the first half climbs 1 % a minute from 20, the rest sit at 40."""
    if i < SERIES // 2:
        return 20.0 + (t % 3600) / 60.0 + rng.gauss(0, 0.5)
    return 40.0 + rng.gauss(0, 2.0)


def main():
    if not os.environ.get("SKIP_BUILD"):
        subprocess.run(["cargo", "build", "--release", "-p", "server"], cwd=ROOT, check=True)
    work = tempfile.mkdtemp(prefix="perfpilot-foresight-")
    port, metrics_port = free_port(), free_port()
    server = subprocess.Popen(
        [BIN, "--listen", f"127.0.0.1:{port}", "--metrics-listen", f"127.0.0.1:{metrics_port}",
         "--data-dir", os.path.join(work, "data"), "--push-create-resources",
         "--push-rate", "1000", "--push-burst", "1000"],
        stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "log"), "w"),
    )
    stop = threading.Event()
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        rng = random.Random(7)

        def push_once():
            now = int(time.time())
            samples = [{"resource": f"custom:{i + 1}", "metric": "level",
                        "value": round(value(i, now, rng), 2), "timestamp": now * 1000}
                       for i in range(SERIES)]
            post(port, "/api/push", {"samples": samples})

        # A push creates at most 16 resources: the first samples go in batches.
        now_ms = int(time.time()) * 1000
        for start in range(0, SERIES, 16):
            post(port, "/api/push", {"samples": [
                {"resource": f"custom:{i + 1}", "metric": "level", "value": 20.0,
                 "timestamp": now_ms} for i in range(start, min(SERIES, start + 16))]})
        # The hour before, at 1 s (pushes reach an hour back): the 1-hour band and the
        # forecasts work on a full hour from the first refit, as they do in steady state.
        if BACKFILL:
            start = int(time.time()) - 3590
            for i in range(SERIES):
                for chunk in range(start, start + 3590, 600):
                    post(port, "/api/push", {"samples": [
                        {"resource": f"custom:{i + 1}", "metric": "level",
                         "value": round(value(i, t, rng), 2), "timestamp": t * 1000}
                        for t in range(chunk, min(start + 3590, chunk + 600))]})
        for i in range(SERIES):
            post(port, f"/api/v1/resources/custom%3A{i + 1}/target",
                 {"metric": "level", "value": 90, "for_secs": 300})

        def pusher():
            next_at = time.time()
            while not stop.is_set():
                push_once()
                next_at += 1.0
                stop.wait(max(0.0, next_at - time.time()))

        thread = threading.Thread(target=pusher, daemon=True)
        thread.start()
        time.sleep(WARMUP)
        f0, c0, t0 = metric(metrics_port, "perfpilot_foresight_seconds_total"), cpu_secs(server.pid), time.time()
        time.sleep(DURATION)
        f1, c1, t1 = metric(metrics_port, "perfpilot_foresight_seconds_total"), cpu_secs(server.pid), time.time()
        stop.set()
        thread.join()
        wall = t1 - t0
        print(f"series: {SERIES} at 1 Hz, each with a target; window {wall:.0f} s after {WARMUP} s")
        print(f"foresight (refits + anomaly counts): {f1 - f0:.3f} s = {100 * (f1 - f0) / wall:.3f} % of one core")
        print(f"whole process: {100 * (c1 - c0) / wall:.2f} % of one core, peak RSS {peak_rss_mb(server.pid):.1f} MB")
    finally:
        stop.set()
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
