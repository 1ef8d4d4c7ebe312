#!/usr/bin/env bash
# Installs Debian's `memcached`, which the shared-embedding tests
# (crates/deja-server/tests/shared_embeddings.rs) start on 127.0.0.1 themselves (deja-testkit's
# memcached_server.rs). The package's own service is not used. Prints one line when it is
# already installed.
set -euo pipefail

as_root() {
    if [[ "$(id -u)" == 0 ]]; then "$@"; else sudo "$@"; fi
}

if ! command -v memcached >/dev/null 2>&1; then
    echo "installing memcached (apt) ..." >&2
    as_root apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends \
        memcached >/dev/null
    # Debian starts its service where there is an init system; tests run their own.
    as_root service memcached stop >/dev/null 2>&1 || true
fi
echo "memcached: $(memcached --version)"
