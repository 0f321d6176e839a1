#!/usr/bin/env bash
# The cost of health-checking 100 HTTP backends every second: perfpilot (release, an
# [[lb_pool]] of 100 targets, checks every 1000 ms) side by side with Debian's
# prometheus-blackbox-exporter probing the same kind of targets (an `http_2xx` module,
# asked for all 100 every second the way a Prometheus with a 1 s scrape interval would;
# the asking loop's own CPU is not counted). A perfpilot with no pool runs alongside as
# the baseline, so "perfpilot's checks" is the difference. Each prober gets its own 100
# backends (one Python process each), which count the checks that reached them.
#
# Prints, per process: CPU seconds over DURATION, CPU % of one core, peak RSS, open
# sockets (mean and peak, sampled every second) and checks answered per second.
#
# Environment: DURATION=60  SKIP_BUILD=1  PERFPILOT_BIN=target/release/perfpilot
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-60}
PERFPILOT_BIN=${PERFPILOT_BIN:-target/release/perfpilot}

if ! dpkg -s prometheus-blackbox-exporter >/dev/null 2>&1; then
  # Its init script would start a daemon on :9115; hold it back.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus-blackbox-exporter >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi
if [[ -z "${SKIP_BUILD:-}" ]]; then
  cargo build -q --release -p server
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
dir=$(mktemp -d /tmp/bench-checks.XXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT

# 100 backends in one process: `ports` gets their ports, `count` the requests answered.
cat > "$dir/backends.py" <<'PY'
import asyncio, sys
out, count_file = sys.argv[1], sys.argv[2]
served = 0
async def handle(reader, writer):
    global served
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            served += 1
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
            if b"close" in head.lower():
                break
    except Exception:
        pass
    writer.close()
async def main():
    servers = [await asyncio.start_server(handle, "127.0.0.1", 0) for _ in range(100)]
    with open(out, "w") as f:
        f.write("\n".join(str(s.sockets[0].getsockname()[1]) for s in servers))
    while True:
        await asyncio.sleep(1)
        with open(count_file, "w") as f:
            f.write(str(served))
asyncio.run(main())
PY
python3 "$dir/backends.py" "$dir/ports-pp" "$dir/count-pp" & pids+=($!)
python3 "$dir/backends.py" "$dir/ports-bb" "$dir/count-bb" & pids+=($!)
for f in ports-pp ports-bb; do
  for _ in $(seq 100); do [[ -s "$dir/$f" ]] && break; sleep 0.1; done
done

targets=$(sed 's/.*/"127.0.0.1:&"/' "$dir/ports-pp" | paste -sd, -)
cat > "$dir/pool.toml" <<TOML
[[lb_pool]]
name = "hundred"
targets = [$targets]
check = { interval_ms = 1000, timeout_ms = 1000, rise = 2, fall = 3 }
TOML
pp_port=$(free_port); base_port=$(free_port); bb_port=$(free_port)
"$PERFPILOT_BIN" --ephemeral --listen "127.0.0.1:$pp_port" --metrics-listen "127.0.0.1:$(free_port)" \
  --config "$dir/pool.toml" >"$dir/pp.log" 2>&1 & pp=$!; pids+=($pp)
"$PERFPILOT_BIN" --ephemeral --listen "127.0.0.1:$base_port" --metrics-listen "127.0.0.1:$(free_port)" \
  >"$dir/base.log" 2>&1 & base=$!; pids+=($base)

cat > "$dir/blackbox.yml" <<YML
modules:
  http_2xx:
    prober: http
    timeout: 1s
    http:
      preferred_ip_protocol: ip4
YML
prometheus-blackbox-exporter --config.file="$dir/blackbox.yml" --web.listen-address="127.0.0.1:$bb_port" \
  >"$dir/bb.log" 2>&1 & bb=$!; pids+=($bb)

# Prometheus' side, emulated: every second, one /probe per target, all at once.
cat > "$dir/scrape.py" <<'PY'
import sys, time, threading, urllib.request
port, ports = sys.argv[1], open(sys.argv[2]).read().split()
def probe(p):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/probe?module=http_2xx&target=http://127.0.0.1:{p}/", timeout=2).read()
    except Exception:
        pass
while True:
    start = time.time()
    threads = [threading.Thread(target=probe, args=(p,)) for p in ports]
    for t in threads: t.start()
    for t in threads: t.join()
    time.sleep(max(0, 1 - (time.time() - start)))
PY
sleep 3
python3 "$dir/scrape.py" "$bb_port" "$dir/ports-bb" & pids+=($!)
sleep 5

cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
sockets() { find "/proc/$1/fd" -lname 'socket:*' 2>/dev/null | wc -l; }
tck=$(getconf CLK_TCK)
declare -A cpu0 sock_sum sock_max
for p in $pp $base $bb; do cpu0[$p]=$(cpu "$p"); sock_sum[$p]=0; sock_max[$p]=0; done
count0_pp=$(cat "$dir/count-pp"); count0_bb=$(cat "$dir/count-bb")
for _ in $(seq "$DURATION"); do
  sleep 1
  for p in $pp $base $bb; do
    s=$(sockets "$p"); sock_sum[$p]=$(( ${sock_sum[$p]} + s ))
    (( s > ${sock_max[$p]} )) && sock_max[$p]=$s
  done
done
count1_pp=$(cat "$dir/count-pp"); count1_bb=$(cat "$dir/count-bb")

row() { # name pid checks
  local used; used=$(( $(cpu "$2") - ${cpu0[$2]} ))
  awk -v n="$1" -v u="$used" -v t="$tck" -v d="$DURATION" -v r="$(rss "$2")" \
      -v sm="${sock_sum[$2]}" -v sx="${sock_max[$2]}" -v c="$3" \
    'BEGIN { printf "| %s | %.2f s | %.2f %% | %.1f MiB | %.1f / %d | %s |\n", n, u/t, u/t/d*100, r/1024, sm/d, sx, c }'
}
echo "| process | CPU over ${DURATION} s | CPU % of a core | peak RSS | sockets mean / peak | checks/s answered |"
echo "|---|---|---|---|---|---|"
row "perfpilot, 100 backends checked" "$pp" "$(awk -v a="$count0_pp" -v b="$count1_pp" -v d="$DURATION" 'BEGIN {printf "%.1f", (b-a)/d}')"
row "perfpilot, no pool (baseline)" "$base" "–"
row "blackbox_exporter, 100 probes/s" "$bb" "$(awk -v a="$count0_bb" -v b="$count1_bb" -v d="$DURATION" 'BEGIN {printf "%.1f", (b-a)/d}')"
