#!/usr/bin/env bash
# Runs every check deja has, on a fresh machine: installs what the tests need (the
# embedding model, the Python OpenAI and Anthropic SDKs in a private venv), then
# formatting, lints, the Rust test suite (unit, conformance, integration through the real
# server and mock upstreams), the end-to-end tests with the official `openai` (also its
# `AzureOpenAI` client) and `anthropic` packages, and a short run of every fuzz target.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "installing the embedding models (skipped when present)"
scripts/install-model.sh all

step "installing the Python test client (.venv)"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r tests/e2e/requirements.txt

step "installing Redis, Redis Cluster tools and Redis Stack (skipped when present)"
scripts/install-redis.sh

step "installing promtool (skipped when present)"
scripts/install-promtool.sh

step "installing Chromium and chromedriver (skipped when present)"
scripts/install-chromium.sh

step "installing memcached (skipped when present)"
scripts/install-memcached.sh

# Tests that need the model fail (instead of skipping) when it is missing.
export DEJA_REQUIRE_MODEL=1
# Tests that need Redis start their own servers on 127.0.0.1 (deja-testkit's
# redis_server.rs, stopped by PID); here they fail instead of skipping when they cannot.
export DEJA_REQUIRE_REDIS=1
# The metrics test checks the /metrics exposition with promtool; here it must not skip.
export DEJA_REQUIRE_PROMTOOL=1
# The dashboard test drives headless Chromium through chromedriver; here it must not skip.
export DEJA_REQUIRE_CHROMIUM=1
# The shared-embedding tests start memcached on 127.0.0.1; here they must not skip.
export DEJA_REQUIRE_MEMCACHED=1

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test"
cargo test --workspace --locked

step "end to end with the openai Python SDK"
cargo build --locked -p deja
.venv/bin/python tests/e2e/test_openai_sdk.py --deja "${CARGO_TARGET_DIR:-target}/debug/deja"

step "end to end with the anthropic Python SDK"
.venv/bin/python tests/e2e/test_anthropic_sdk.py --deja "${CARGO_TARGET_DIR:-target}/debug/deja"

step "end to end with the openai Python SDK's AzureOpenAI client"
.venv/bin/python tests/e2e/test_azure_sdk.py --deja "${CARGO_TARGET_DIR:-target}/debug/deja"

step "fuzzing: every cargo-fuzz target for 20 s from its committed corpus (scripts/fuzz.sh)"
scripts/fuzz.sh --seconds 20

step "all checks passed"
