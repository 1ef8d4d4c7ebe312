#!/usr/bin/env bash
# Soak test (not in CI; see docs/soak.md): `deja serve` in front of `deja mock-upstream`,
# capacity measured on the mixed load (exact, semantic, misses, streams, embeddings), then
# that mix sent open-loop at 80% of it for MINUTES with invalidations and imports beside
# it, with `cache.max_entries` set. One line every 10 s (errors, p50/p99, outcomes,
# entries, RSS of `deja serve`), then a summary and a verdict: 0 errors, RSS flat once at
# capacity, p99 not drifting. Exit status 0 on PASS, 2 on FAIL.
#   bench/soak/run.sh [minutes]                  (default 10; decimals allowed: 0.5)
# Environment:
#   SOAK_MAX_ENTRIES (20000)   cache.max_entries of the server
#   SOAK_CALIBRATE_SECS (20)   length of the capacity measurement
#   SOAK_LOAD (0.8)            fraction of the measured capacity to send
#   SOAK_RATE                  a fixed rate in req/s instead (skips the measurement)
#   SOAK_DURABILITY (strict)   store.durability of the server (strict or fast)
#   SOAK_JSON                  write the time series there (default: soak-<date>.json in $TMPDIR)
#   DEJA_BIN                   another deja build (A/B runs); DEJA_LOG its log level (warn)
# Needs a release build (cargo build --release -p deja); builds the generator
# (crates/deja/examples/soak.rs) itself. Talks to 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/../.."
minutes=${1:-10}
secs=$(awk -v m="$minutes" 'BEGIN { s = int(m * 60); if (s < 20) exit 1; print s }') \
  || { echo "minutes must be a number, at least 0.34 (20 s)"; exit 1; }
max_entries=${SOAK_MAX_ENTRIES:-20000}
calibrate=${SOAK_CALIBRATE_SECS:-20}
durability=${SOAK_DURABILITY:-strict}
json=${SOAK_JSON:-${TMPDIR:-/tmp}/soak-$(date -u +%Y%m%dT%H%M%SZ).json}
bin=${DEJA_BIN:-target/release/deja}
[ -x "$bin" ] || { echo "build first: cargo build --release -p deja"; exit 1; }
cargo build --release --quiet -p deja --example soak
gen=${CARGO_TARGET_DIR:-target}/release/examples/soak
scripts/install-model.sh >/dev/null

tmp=$(mktemp -d)
pids=()
cleanup() {
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[$i]}" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
mport=$(free_port); dport=$(free_port)
cat >"$tmp/deja.toml" <<TOML
[cache]
max_entries = $max_entries
# Eviction runs at every sweep; 10 s keeps the overshoot above max_entries small.
sweep_interval_secs = 10
TOML
DEJA_ADMIN_TOKEN=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
export DEJA_ADMIN_TOKEN

"$bin" mock-upstream --listen 127.0.0.1:$mport >"$tmp/mock.log" 2>&1 & mock=$!; pids+=($mock)
DEJA_CONFIG="$tmp/deja.toml" DEJA_LOG=${DEJA_LOG:-warn} "$bin" serve --listen 127.0.0.1:$dport \
  --data-dir "$tmp/data" --upstream http://127.0.0.1:$mport/v1 --durability "$durability" \
  2>"$tmp/serve.log" & serve=$!; pids+=($serve)
for _ in $(seq 300); do curl -sf http://127.0.0.1:$dport/health >/dev/null && break; sleep 0.1; done
curl -sf http://127.0.0.1:$dport/health >/dev/null || { echo "deja serve did not start:"; cat "$tmp/serve.log"; exit 1; }

echo "== soak: ${secs}s, max_entries $max_entries, durability $durability, deja serve pid $serve on 127.0.0.1:$dport, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
rate_args=()
[ -n "${SOAK_RATE:-}" ] && rate_args=(--rate "$SOAK_RATE")
status=0
# The generator bounds itself; the timeout is a backstop against a hung server. It runs in
# the background so that a signal to this script runs the cleanup at once.
timeout $((secs + calibrate + 300)) "$gen" --url http://127.0.0.1:$dport --serve-pid "$serve" \
  --duration-secs "$secs" --calibrate-secs "$calibrate" --load "${SOAK_LOAD:-0.8}" \
  --max-entries "$max_entries" --data-dir "$tmp/data" --json "$json" "${rate_args[@]}" & gen_pid=$!; pids+=($gen_pid)
wait "$gen_pid" || status=$?

# The mock keeps every request it saw, so its memory grows through the run; it is not deja's.
echo "== upstream calls (mock): $(curl -s http://127.0.0.1:$mport/mock/stats); mock $(grep VmRSS /proc/$mock/status | tr -s ' ')"
if curl -sf --max-time 5 http://127.0.0.1:$dport/health >/dev/null; then
  echo "== deja serve still running; final $(grep VmRSS /proc/$serve/status | tr -s ' ')"
else
  echo "== deja serve no longer answers /health"; status=1
fi
echo "== deja serve log: $(wc -l <"$tmp/serve.log") lines at ${DEJA_LOG:-warn} and above; the last 10:"
tail -n 10 "$tmp/serve.log"
exit $status
