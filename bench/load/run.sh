#!/usr/bin/env bash
# Load test of the proxy on its embedded default: exact hits, repeated paraphrases (served
# through aliases) and semantic hits (aliases off) through real HTTP with keep-alive, 16
# connections, wrk on the same machine.
#   bench/load/run.sh [seconds]
# DEJA_BIN picks another build (A/B runs); DEJA_LOG sets the log level (default warn).
# Needs wrk (Debian: apt-get install wrk) and a release build (cargo build --release -p deja).
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-10}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)"; exit 1; }
bin=${DEJA_BIN:-target/release/deja}
[ -x "$bin" ] || { echo "build first: cargo build --release -p deja"; exit 1; }
scripts/install-model.sh >/dev/null
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
mport=$(free_port)
"$bin" mock-upstream --listen 127.0.0.1:$mport >/dev/null 2>&1 & pids+=($!)
# start_deja NAME [ENV=VALUE...]: a proxy on a free port, its port in $dport.
start_deja() {
  local name=$1; shift
  dport=$(free_port)
  env DEJA_LOG="${DEJA_LOG:-warn}" "$@" "$bin" serve --listen 127.0.0.1:$dport --data-dir "$tmp/$name" \
    --upstream http://127.0.0.1:$mport/v1 --durability fast 2>>"$tmp/serve.log" & pids+=($!)
  for _ in $(seq 100); do curl -sf http://127.0.0.1:$dport/health >/dev/null && break; sleep 0.1; done
  body='{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"What is the return policy for items bought online?"}],"temperature":0}'
  curl -sf -H 'Authorization: Bearer sk-bench' -H 'Content-Type: application/json' -d "$body" http://127.0.0.1:$dport/v1/chat/completions >/dev/null
  sleep 0.5
}
start_deja default
echo "== exact hits: wrk -t2 -c16 -d${secs}s"
wrk -t2 -c16 -d${secs}s --latency -s bench/load/exact_hit.lua http://127.0.0.1:$dport/v1/chat/completions
# The same four paraphrases over and over: after the first of each, served through its alias.
echo "== repeated paraphrases: wrk -t2 -c16 -d${secs}s"
wrk -t2 -c16 -d${secs}s --latency -s bench/load/semantic_hit.lua http://127.0.0.1:$dport/v1/chat/completions
echo "== alias hits: $(curl -s http://127.0.0.1:$dport/metrics | grep '^deja_alias_hits_total')"
# Every paraphrase embedded, searched and verified: aliases off.
start_deja no-aliases DEJA_MAX_ALIASES=0
echo "== semantic hits (aliases off): wrk -t2 -c16 -d${secs}s"
wrk -t2 -c16 -d${secs}s --latency -s bench/load/semantic_hit.lua http://127.0.0.1:$dport/v1/chat/completions
echo "== semantic hits (aliases off), one connection: wrk -t1 -c1 -d${secs}s"
wrk -t1 -c1 -d${secs}s --latency -s bench/load/semantic_hit.lua http://127.0.0.1:$dport/v1/chat/completions
echo "== upstream calls during the runs (mock): $(curl -s http://127.0.0.1:$mport/mock/stats)"
echo "== proxy log lines written: $(wc -l <"$tmp/serve.log")"
