#!/usr/bin/env bash
# The cost on PostgreSQL of watching it at 1 Hz: perfpilot (release) and Debian's
# prometheus-postgres-exporter scraped every second, side by side against one throwaway
# PostgreSQL 15 cluster under a light pgbench load, each with its own pg_monitor role.
# For DURATION seconds it counts, per role, the statements run (pg_stat_statements calls,
# track = all) and their execution time, and the CPU time of the backends serving each
# role (utime + stime from /proc). Prints one table row per watcher.
#
# Needs root (PostgreSQL runs as the `postgres` user). Installs postgresql-15 and
# prometheus-postgres-exporter when missing; starts and removes everything itself.
#
# Then, against the same cluster: perfpilot watching 10 databases for SCALE_SECS seconds
# (its CPU, the host tick's processing time, how many of the 10 cards had a fresh value
# each second), and the time from a target edit that makes the probe latency a breach to
# the card showing the evaluated breach (5 trials).
#
# Environment: DURATION=60  SCALE_SECS=20  SKIP_BUILD=1  PERFPILOT_BIN=target/release/perfpilot
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-60}
PERFPILOT_BIN=${PERFPILOT_BIN:-target/release/perfpilot}
B=/usr/lib/postgresql/15/bin

for pkg in postgresql-15 prometheus-postgres-exporter; do
  dpkg -s "$pkg" >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null
done
if [[ -z "${SKIP_BUILD:-}" ]]; then
  cargo build -q --release -p server
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
dir=$(mktemp -d /tmp/bench-pg.XXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  runuser -u postgres -- $B/pg_ctl -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
mkdir "$dir/sock"; chown -R postgres:postgres "$dir"; chmod 700 "$dir"
port=$(free_port)
runuser -u postgres -- $B/initdb -D "$dir/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 --no-sync >/dev/null
runuser -u postgres -- $B/pg_ctl -D "$dir/data" -l "$dir/log" -w -o \
  "-c listen_addresses=127.0.0.1 -p $port -k $dir/sock -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all -c fsync=off" start >/dev/null
psql() { runuser -u postgres -- $B/psql -X -q -A -t -h "$dir/sock" -p "$port" "$@"; }
psql -d postgres -c "CREATE DATABASE app" \
  -c "CREATE ROLE perf LOGIN PASSWORD 'perf-pw' IN ROLE pg_monitor" \
  -c "CREATE ROLE exporter LOGIN PASSWORD 'exporter-pw' IN ROLE pg_monitor"
psql -d app -c "CREATE EXTENSION pg_stat_statements" >/dev/null
runuser -u postgres -- $B/pgbench -h "$dir/sock" -p "$port" -i -q -s 1 app >/dev/null 2>&1
# A light, steady workload, so both watchers look at a database that is doing something.
runuser -u postgres -- $B/pgbench -h "$dir/sock" -p "$port" -c 2 -R 50 -T $((DURATION + 30)) app >/dev/null 2>&1 &
pids+=($!)

echo perf-pw > "$dir/perf.password"
cat > "$dir/perfpilot.toml" <<TOML
[[postgres]]
name = "app"
url = "postgresql://perf@127.0.0.1:$port/app"
password_file = "$dir/perf.password"
TOML
pp_port=$(free_port)
RUST_LOG=warn "$PERFPILOT_BIN" --listen "127.0.0.1:$pp_port" --metrics-listen off --ephemeral \
  --config "$dir/perfpilot.toml" >/dev/null 2>&1 &
pids+=($!)
ex_port=$(free_port)
DATA_SOURCE_NAME="postgresql://exporter:exporter-pw@127.0.0.1:$port/app?sslmode=disable" \
  prometheus-postgres-exporter --web.listen-address="127.0.0.1:$ex_port" >/dev/null 2>&1 &
pids+=($!)
# Scraped every second, as perfpilot reads every second.
( while true; do curl -sf "http://127.0.0.1:$ex_port/metrics" >/dev/null || true; sleep 1; done ) &
pids+=($!)
sleep 10   # both connected and warmed up

sample() { # role -> "calls exec_ms cpu_ticks"
  local role=$1
  local calls ms
  read -r calls ms < <(psql -d app -F' ' -c "SELECT coalesce(sum(calls),0), coalesce(sum(total_exec_time),0) FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid WHERE r.rolname = '$role'")
  local ticks=0
  for pid in $(psql -d app -c "SELECT pid FROM pg_stat_activity WHERE usename = '$role'"); do
    if [[ -r /proc/$pid/stat ]]; then
      ticks=$((ticks + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
    fi
  done
  echo "$calls $ms $ticks"
}
declare -A before
for role in perf exporter; do before[$role]=$(sample "$role"); done
sleep "$DURATION"
hz=$(getconf CLK_TCK)
echo "| watcher | statements/s | execution time (ms/s) | backend CPU (% of a core) | connections |"
echo "|---|---|---|---|---|"
for role in perf exporter; do
  read -r c0 m0 t0 <<<"${before[$role]}"
  read -r c1 m1 t1 <<<"$(sample "$role")"
  conns=$(psql -d app -c "SELECT count(*) FROM pg_stat_activity WHERE usename = '$role'")
  name=$([[ $role == perf ]] && echo "perfpilot (1 Hz)" || echo "postgres_exporter $(prometheus-postgres-exporter --version 2>&1 | grep -o 'version [0-9.]*' | head -1) (scraped at 1 Hz)")
  python3 - "$name" "$c0" "$c1" "$m0" "$m1" "$t0" "$t1" "$DURATION" "$hz" "$conns" <<'PY'
import sys
name, c0, c1, m0, m1, t0, t1, secs, hz, conns = sys.argv[1:]
secs = float(secs)
print(f"| {name} | {(float(c1)-float(c0))/secs:.1f} | {(float(m1)-float(m0))/secs:.2f} | {(int(t1)-int(t0))/int(hz)/secs*100:.2f} | {conns} |")
PY
done
echo "(pg_stat_statements.track = all; backend CPU counts the backends alive at both samples; $DURATION s; load: $(uptime | sed 's/.*load average/load average/'))"

# Ten databases at once (the same cluster under ten names), and breach → status.
SCALE_SECS=${SCALE_SECS:-20}
kill "${pids[1]}" 2>/dev/null || true
for i in $(seq 1 10); do
  printf '[[postgres]]\nname = "db%s"\nurl = "postgresql://perf@127.0.0.1:%s/app"\npassword_file = "%s/perf.password"\n' "$i" "$port" "$dir"
done > "$dir/ten.toml"
pp_port=$(free_port)
RUST_LOG=warn "$PERFPILOT_BIN" --listen "127.0.0.1:$pp_port" --metrics-listen off --metrics-on-main-listener \
  --ephemeral --config "$dir/ten.toml" >/dev/null 2>&1 &
pp=$!
pids+=($pp)
sleep 8
python3 - "$pp" "$pp_port" "$SCALE_SECS" <<'PY'
import json, os, sys, time, urllib.request
pid, port, secs = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
base = f"http://127.0.0.1:{port}"
hz = os.sysconf("SC_CLK_TCK")
def cpu():
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])
def overview():
    req = urllib.request.Request(base + "/api/overview", data=b"", method="POST",
        headers={"Origin": base, "Content-Type": "application/x-www-form-urlencoded"})
    return json.load(urllib.request.urlopen(req))
def tick_seconds():
    for line in urllib.request.urlopen(base + "/metrics").read().decode().splitlines():
        if line.startswith("perfpilot_monitor_tick_duration_seconds "):
            return float(line.split()[1])
c0, t0 = cpu(), time.time()
fresh, ticks = [], []
while time.time() - t0 < secs:
    cards = [c for c in overview()["cards"] if c["id"].startswith("database:")]
    fresh.append(sum(1 for c in cards if c["value"] is not None))
    ticks.append(tick_seconds() * 1000)
    time.sleep(1)
cpu_pct = (cpu() - c0) / hz / (time.time() - t0) * 100
ticks.sort()
print(f"\n10 databases for {secs} s: perfpilot CPU {cpu_pct:.1f} % of a core; host tick processing "
      f"p50 {ticks[len(ticks)//2]:.2f} ms, max {ticks[-1]:.2f} ms; cards with a fresh value each second: "
      f"min {min(fresh)}/10, mean {sum(fresh)/len(fresh):.1f}/10")
def edit(value):
    body = json.dumps({"metric": "latency", "value": value, "for_secs": 0}).encode()
    req = urllib.request.Request(base + "/api/v1/resources/database%3Adb1/target", data=body, method="POST",
        headers={"Origin": base, "Content-Type": "application/json"})
    urllib.request.urlopen(req).read()
def card():
    return next(c for c in overview()["cards"] if c["id"] == "database:db1")
delays = []
for _ in range(5):
    edit(100000)  # met
    time.sleep(2)
    start = time.time()
    edit(0.001)   # every probe is now a breach
    while True:
        c = card()
        if c["evaluated"] and (c["target"] or {}).get("value") == 0.001:
            break
        time.sleep(0.02)
    delays.append((time.time() - start) * 1000)
delays.sort()
print(f"target edit making the latency a breach → evaluated breach on the card: p50 {delays[2]:.0f} ms, max {delays[-1]:.0f} ms (5 trials, 1 s ticks)")
PY
