#!/usr/bin/env bash
# The error budget's figures: `deja simulate` on BANKING77 and HWU64 intents, at δ = 1%
# and 2%, over several seeds; one JSON object per run in target/simulate/results.jsonl,
# and a table on standard output.
#
#   bench/simulate/run.sh [QUERIES] [SEEDS...]      (default: 10000 queries, seeds 1 2 3)
set -euo pipefail
cd "$(dirname "$0")/../.."
queries="${1:-10000}"
shift || true
seeds=("${@:-1 2 3}")
# shellcheck disable=SC2206
seeds=(${seeds[*]})
python3 bench/simulate/intents.py >/dev/null
cargo build --release -q -p deja
out=target/simulate/results.jsonl
: >"$out"
for set in banking77 hwu64; do
  for delta in 0.01 0.02; do
    for seed in "${seeds[@]}"; do
      ./target/release/deja simulate --intents "target/simulate/$set.intents.csv" \
        --queries "$queries" --max-false-hit-rate "$delta" --seed "$seed" --json |
        python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)))' >>"$out"
    done
  done
done
python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(f"{'intents':<10} {'δ':>5} {'seed':>4} {'budget hits':>12} {'false':>7} {'defaults':>9} {'false':>7} {'static same':>12} {'audit [lo, hi]':>20} {'covers':>6}")
for r in rows:
    name = r["intents_file"].split("/")[-1].split(".")[0]
    a = r["audit"]
    audit = "-" if a["low"] is None else f"[{a['low']*100:.1f}, {a['high']*100:.1f}]"
    print(f"{name:<10} {r['max_false_hit_rate']*100:>4.0f}% {r['seed']:>4} {r['hit_rate']*100:>11.2f}% {r['false_hit_rate']*100:>6.2f}% "
          f"{r['defaults']['hit_rate']*100:>8.2f}% {r['defaults']['false_hit_rate']*100:>6.2f}% {r['static_hit_rate_same_false']*100:>11.2f}% {audit:>20} {str(a['covers_true_rate']):>6}")
PY
