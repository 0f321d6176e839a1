#!/usr/bin/env python3
"""Two perfpilot replicas on one throwaway PostgreSQL 15 (`--database-url`), measured:

1. Failover: TRIALS times, `kill -9` the leader and time until the other replica's
   /readyz says it leads (polled every 20 ms); the killed one is restarted as a follower
   before the next trial. Then TERM_TRIALS handovers on SIGTERM. Prints p50 and max.
2. At rest: the statements each replica runs on PostgreSQL per second (pg_stat_statements
   calls of the replicas' role, over REST_SECS with both replicas idle).
3. Durable edits: wrk POSTs target edits at the leader for EDIT_SECS (every answer waits
   for its commit) with the state in PostgreSQL, then at the follower (which passes each
   to the leader and catches up before answering), then the same against one perfpilot
   with the state in SQLite (`--data-dir`), in the same session: edits/s and p99.

PostgreSQL runs with fsync on (its defaults), as the SQLite side does (synchronous = FULL).
Needs root (PostgreSQL runs as the `postgres` user); installs postgresql-15 and wrk when
missing; starts and removes everything itself.

Environment: TRIALS=20  TERM_TRIALS=10  REST_SECS=30  EDIT_SECS=10  CONNECTIONS=16
             PERFPILOT_BIN=target/release/perfpilot  SKIP_BUILD=1
"""
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PG = "/usr/lib/postgresql/15/bin"
TRIALS = int(os.environ.get("TRIALS", "20"))
TERM_TRIALS = int(os.environ.get("TERM_TRIALS", "10"))
REST_SECS = int(os.environ.get("REST_SECS", "30"))
EDIT_SECS = int(os.environ.get("EDIT_SECS", "10"))
CONNECTIONS = int(os.environ.get("CONNECTIONS", "16"))
BIN = os.environ.get("PERFPILOT_BIN", os.path.join(ROOT, "target/release/perfpilot"))
PASSWORD = "bench-state-pw"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def get(port, path, timeout=1.0):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.read().decode()
    except Exception as err:  # a replica that is down or starting answers nothing
        return f"error: {err}"


class Cluster:
    def __init__(self, work):
        self.dir = os.path.join(work, "pg")
        os.makedirs(os.path.join(self.dir, "sock"))
        subprocess.run(["chown", "-R", "postgres:postgres", self.dir], check=True)
        os.chmod(self.dir, 0o700)
        self.port = free_port()
        self.as_pg([f"{PG}/initdb", "-D", f"{self.dir}/data", "-U", "postgres",
                    "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync"])
        opts = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir}/sock "
                "-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all")
        self.as_pg([f"{PG}/pg_ctl", "-D", f"{self.dir}/data", "-l", f"{self.dir}/log", "-w",
                    "-o", opts, "start"])
        self.psql("postgres", f"CREATE ROLE perfpilot LOGIN PASSWORD '{PASSWORD}'")
        self.psql("postgres", "CREATE EXTENSION pg_stat_statements")

    @staticmethod
    def as_pg(args):
        subprocess.run(["runuser", "-u", "postgres", "--", *args], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def psql(self, db, sql):
        out = subprocess.run(["runuser", "-u", "postgres", "--", f"{PG}/psql", "-X", "-q", "-A",
                              "-t", "-h", f"{self.dir}/sock", "-p", str(self.port), "-d", db,
                              "-c", sql], check=True, capture_output=True, text=True)
        return out.stdout.strip()

    def stop(self):
        subprocess.run(["runuser", "-u", "postgres", "--", f"{PG}/pg_ctl", "-D",
                        f"{self.dir}/data", "-m", "immediate", "-w", "stop"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Replica:
    def __init__(self, name, work, url, password_file):
        self.name, self.url, self.password_file = name, url, password_file
        self.port = free_port()
        self.data = os.path.join(work, f"replica-{name}")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            [BIN, "--listen", f"127.0.0.1:{self.port}", "--metrics-listen", "off",
             "--data-dir", self.data, "--database-url", self.url,
             "--database-password-file", self.password_file, "--replica-name", self.name,
             "--mutation-rate", "1000000", "--mutation-burst", "1000000"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "RUST_LOG": "error"})
        for _ in range(200):
            if get(self.port, "/healthz").startswith("ok"):
                return
            time.sleep(0.05)
        raise SystemExit(f"replica {self.name} did not start")

    def readyz(self):
        return get(self.port, "/readyz", timeout=0.5)

    def leads(self):
        return f"(leader {self.name} in epoch" in self.readyz()

    def follows(self):
        return "follower of" in self.readyz()

    def kill(self, sig):
        self.proc.send_signal(sig)

    def wait(self):
        self.proc.wait(timeout=30)


def until(check, limit):
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > limit:
            raise SystemExit("timed out")
        time.sleep(0.02)
    return time.monotonic() - started


def wrk(port, work, label):
    script = os.path.join(work, "edit.lua")
    with open(script, "w") as f:
        f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                'local n = 0\nrequest = function()\n  n = n + 1\n'
                '  return wrk.format(nil, "/api/v1/resources/cpu/target", nil, '
                'string.format(\'{"metric":"utilization","value":%d}\', 10 + n % 80))\nend\n')
    out = subprocess.run(["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{EDIT_SECS}s", "--latency", "-s",
                          script, f"http://127.0.0.1:{port}"], capture_output=True, text=True).stdout
    rate = next(l.split()[1] for l in out.splitlines() if l.startswith("Requests/sec"))
    p99 = next(l.split()[1] for l in out.splitlines() if l.strip().startswith("99%"))
    non2xx = next((l.split()[-1] for l in out.splitlines() if "Non-2xx" in l), "0")
    print(f"  {label}: {float(rate):,.0f} edits/s, p99 {p99}, non-2xx {non2xx}")


def main():
    for pkg in ["postgresql-15", "wrk"]:
        if subprocess.run(["dpkg", "-s", pkg], capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "install", "-y", "-qq", pkg], check=True,
                           env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    if not os.environ.get("SKIP_BUILD"):
        subprocess.run(["cargo", "build", "-q", "--release", "-p", "server"], cwd=ROOT, check=True)
    work = tempfile.mkdtemp(prefix="bench-replicas.")
    os.chmod(work, 0o755)
    cluster = None
    replicas = []
    try:
        cluster = Cluster(work)
        cluster.psql("postgres", "CREATE DATABASE state OWNER perfpilot")
        cluster.psql("state", "CREATE EXTENSION pg_stat_statements")
        password_file = os.path.join(work, "db.password")
        with open(password_file, "w") as f:
            f.write(PASSWORD + "\n")
        url = f"postgresql://perfpilot@127.0.0.1:{cluster.port}/state"
        a, b = Replica("a", work, url, password_file), Replica("b", work, url, password_file)
        replicas = [a, b]
        a.start()
        until(a.leads, 15)
        b.start()
        until(b.follows, 10)
        print(f"== {BIN}; uptime: {os.popen('uptime').read().strip()}")

        for label, sig, trials in [("kill -9", signal.SIGKILL, TRIALS),
                                   ("SIGTERM", signal.SIGTERM, TERM_TRIALS)]:
            times = []
            for _ in range(trials):
                leader, other = (a, b) if a.leads() else (b, a)
                leader.kill(sig)
                times.append(until(other.leads, 15))
                leader.wait()
                leader.start()
                until(leader.follows, 10)
            print(f"failover on {label}, {trials} trials: p50 {statistics.median(times):.2f} s, "
                  f"max {max(times):.2f} s")

        cluster.psql("state", "SELECT pg_stat_statements_reset()")
        time.sleep(REST_SECS)
        calls = cluster.psql("state", "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s "
                                      "JOIN pg_roles r ON r.oid = s.userid "
                                      "WHERE r.rolname = 'perfpilot'")
        print(f"at rest, two replicas: {int(calls) / REST_SECS / 2:.1f} statements/s per replica "
              f"({calls} in {REST_SECS} s)")
        top = cluster.psql("state", "SELECT calls, left(regexp_replace(query, '\\s+', ' ', 'g'), 90) "
                                    "FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid "
                                    "WHERE r.rolname = 'perfpilot' ORDER BY calls DESC LIMIT 8")
        for line in top.splitlines():
            print(f"    {line}")

        print(f"durable target edits, wrk {CONNECTIONS} connections, {EDIT_SECS} s:")
        leader = a if a.leads() else b
        follower = b if leader is a else a
        wrk(leader.port, work, "PostgreSQL (leader of two replicas)")
        # A follower passes each edit to the leader and catches up before it answers.
        wrk(follower.port, work, "PostgreSQL (through the follower, passed to the leader)")
        for r in replicas:
            r.kill(signal.SIGTERM)
            r.wait()
        replicas = []
        port = free_port()
        single = subprocess.Popen(
            [BIN, "--listen", f"127.0.0.1:{port}", "--metrics-listen", "off", "--data-dir",
             os.path.join(work, "sqlite"), "--mutation-rate", "1000000", "--mutation-burst",
             "1000000"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            until(lambda: get(port, "/healthz").startswith("ok"), 10)
            wrk(port, work, "SQLite (one perfpilot)")
        finally:
            single.terminate()
            single.wait()
    finally:
        for r in replicas:
            if r.proc and r.proc.poll() is None:
                r.proc.kill()
                r.proc.wait()
        if cluster:
            cluster.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
