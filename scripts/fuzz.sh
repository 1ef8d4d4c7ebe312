#!/usr/bin/env bash
# Runs deja's cargo-fuzz targets (fuzz/, its own workspace; see docs/fuzzing.md), one job
# each, one after the other, from their committed seed corpora.
#
#   scripts/fuzz.sh --seconds 30              every target for 30 s (what CI runs)
#   scripts/fuzz.sh --runs 10000000 sse_stream  one target for ten million executions
#   scripts/fuzz.sh --seconds 600 --runs 10000000   each stops at whichever comes first
#   scripts/fuzz.sh --list                    the target names
#
# Installs cargo-fuzz (and a nightly toolchain) when missing. New inputs a run finds go to
# a temporary directory, not to fuzz/corpus/, so the tree stays clean; crashes are saved
# under fuzz/artifacts/<target>/ (ignored by git) and printed with the command that
# reproduces them. Prints one line per target (executions, time, rate, result) and exits
# non-zero if any target crashed, leaked, timed out or ran out of memory.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
}

limit=()
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) limit+=("-max_total_time=${2:?--seconds needs a number}"); shift 2 ;;
    --runs) limit+=("-runs=${2:?--runs needs a number}"); shift 2 ;;
    --list) targets=(list); shift ;;
    -h|--help) usage ;;
    -*) echo "unknown option $1" >&2; usage ;;
    *) targets+=("$1"); shift ;;
  esac
done

# Both limits may be given: each target stops at whichever comes first.
if [ ${#limit[@]} -eq 0 ]; then
  limit=(-max_total_time=30)
fi

if ! rustup toolchain list | grep -q '^nightly'; then
  echo "==> installing the nightly toolchain (cargo fuzz needs it)"
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

cd fuzz
all=$(cargo +nightly fuzz list)
if [ "${targets[*]:-}" = list ]; then
  echo "$all"
  exit 0
fi
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets <<<"$all"
fi
for t in "${targets[@]}"; do
  grep -qx "$t" <<<"$all" || { echo "no fuzz target $t (have: $(echo $all))" >&2; exit 2; }
done

# Debug assertions on: an arithmetic overflow is a crash, as in the library's tests.
build=(-a)
echo "==> building the fuzz targets"
build_start=$(date +%s)
cargo +nightly fuzz build "${build[@]}"
echo "    built in $(( $(date +%s) - build_start )) s"

found=$(mktemp -d)
trap 'rm -rf "$found"' EXIT
failed=0
for t in "${targets[@]}"; do
  mkdir -p "$found/$t" "artifacts/$t"
  log="$found/$t.log"
  start=$(date +%s)
  # One job; the first corpus directory receives new inputs, the committed one is only
  # read. A slow input (10 s) is a hang; 2 GB of memory is more than any input may cost.
  if cargo +nightly fuzz run "${build[@]}" "$t" "$found/$t" "corpus/$t" -- \
      "${limit[@]}" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 \
      -print_final_stats=1 >"$log" 2>&1; then
    result=ok
  else
    result=FAILED
    failed=1
  fi
  secs=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  printf '%-20s %12s execs  %5s s  %8s exec/s  %s\n' "$t" "${execs:-?}" "$secs" "${rate:-?}" "$result"
  if [ "$result" != ok ]; then
    grep -E 'panicked|ERROR: libFuzzer|SUMMARY|Test unit written|artifact_prefix|out-of-memory|timeout' "$log" | head -n 20 >&2 || true
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | head -n 1)
    if [ -n "$artifact" ]; then
      echo "    reproduce: (cd fuzz && cargo +nightly fuzz run ${build[*]} $t $artifact)" >&2
    else
      tail -n 30 "$log" >&2
    fi
  fi
done
exit "$failed"
