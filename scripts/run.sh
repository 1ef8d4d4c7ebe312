#!/usr/bin/env bash
# Runs the deja proxy on its embedded default (on-disk store, in-process index, local
# all-MiniLM-L6-v2 model), installing the model first if it is missing. Extra arguments go
# to `deja serve` (e.g. --upstream http://127.0.0.1:8090/v1 --listen 127.0.0.1:8080). With
# `--embedder-model multilingual-e5-small` (or DEJA_EMBEDDER_MODEL) that model is
# installed and served instead.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL="${DEJA_EMBEDDER_MODEL:-all-minilm-l6-v2}"
prev=""
for arg in "$@"; do
    case "$arg" in
        --embedder-model=*) MODEL="${arg#*=}" ;;
    esac
    if [[ "$prev" == "--embedder-model" ]]; then
        MODEL="$arg"
    fi
    prev="$arg"
done
scripts/install-model.sh "$(echo "$MODEL" | tr '[:upper:]' '[:lower:]')" >&2
cargo build --release --locked -p deja >&2
exec target/release/deja serve "$@"
