#!/usr/bin/env bash
# What one request costs the server and wrk in CPU time, for `GET /health` (the HTTP floor)
# and for exact hits, side by side on one server: wrk shares the machine's cores with the
# server, so req/s alone mixes the two.
#   bench/load/cpu-per-request.sh [seconds] [rounds]
# DEJA_BIN picks another build (A/B runs). Needs wrk and a release build, as run.sh does.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-8}
rounds=${2:-2}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)"; exit 1; }
[ -x /usr/bin/time ] || { echo "/usr/bin/time is not installed (apt-get install time)"; exit 1; }
bin=${DEJA_BIN:-target/release/deja}
[ -x "$bin" ] || { echo "build first: cargo build --release -p deja"; exit 1; }
scripts/install-model.sh >/dev/null
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 0.5; rm -rf "$tmp"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
mport=$(free_port)
"$bin" mock-upstream --listen 127.0.0.1:$mport >/dev/null 2>&1 & pids+=($!)
dport=$(free_port)
DEJA_LOG=warn "$bin" serve --listen 127.0.0.1:$dport --data-dir "$tmp/data" \
  --upstream http://127.0.0.1:$mport/v1 --durability fast 2>>"$tmp/serve.log" & server=$!
pids+=($server)
for _ in $(seq 100); do curl -sf http://127.0.0.1:$dport/health >/dev/null && break; sleep 0.1; done
body='{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"What is the return policy for items bought online?"}],"temperature":0}'
curl -sf -H 'Authorization: Bearer sk-bench' -H 'Content-Type: application/json' -d "$body" \
  http://127.0.0.1:$dport/v1/chat/completions >/dev/null
sleep 0.5
ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$server/stat"; }
for _ in $(seq "$rounds"); do
  for what in health exact; do
    if [ $what = health ]; then
      args=(http://127.0.0.1:$dport/health)
    else
      args=(-s bench/load/exact_hit.lua http://127.0.0.1:$dport/v1/chat/completions)
    fi
    t0=$(cpu_ticks)
    out=$(/usr/bin/time -f "WRKCPU %U %S" wrk -t2 -c16 -d${secs}s --latency "${args[@]}" 2>&1)
    t1=$(cpu_ticks)
    python3 - "$what" "$t0" "$t1" "$ticks" <<PY
import re, sys
what, t0, t1, ticks = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
out = """$out"""
reqs = int(re.search(r"(\d+) requests in", out).group(1))
rps = float(re.search(r"Requests/sec:\s*([\d.]+)", out).group(1))
p99 = re.search(r"99%\s+(\S+)", out).group(1)
user, system = map(float, re.search(r"WRKCPU ([\d.]+) ([\d.]+)", out).groups())
server_us = (t1 - t0) / ticks * 1e6 / reqs
wrk_us = (user + system) * 1e6 / reqs
print(f"{what:6} {rps:10.0f} req/s  p99 {p99:>8}  server {server_us:5.1f} us/req  wrk {wrk_us:5.1f} us/req")
PY
  done
done
