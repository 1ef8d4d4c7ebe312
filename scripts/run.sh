#!/usr/bin/env bash
# Runs the deja proxy on its embedded default (on-disk store, in-process index, local
# all-MiniLM-L6-v2 model), installing the model first if it is missing. Extra arguments go
# to `deja serve` (e.g. --upstream http://127.0.0.1:8090/v1 --listen 127.0.0.1:8080).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-model.sh >&2
cargo build --release --locked -p deja >&2
exec target/release/deja serve "$@"
