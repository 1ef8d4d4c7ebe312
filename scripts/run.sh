#!/usr/bin/env bash
# Runs the deja proxy on its embedded default (on-disk store, in-process index, the local
# models: English prompts by all-MiniLM-L6-v2, the others by multilingual-e5-small),
# installing the models first if they are missing. Extra arguments go to `deja serve` (e.g.
# --upstream http://127.0.0.1:8090/v1 --listen 127.0.0.1:8080). With `--embedder-model
# all-minilm-l6-v2` or `multilingual-e5-small` (or DEJA_EMBEDDER_MODEL) only that model is
# installed and served.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL="${DEJA_EMBEDDER_MODEL:-auto}"
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
