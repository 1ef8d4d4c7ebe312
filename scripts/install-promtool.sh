#!/usr/bin/env bash
# Installs promtool from Debian's `prometheus` package, which the metrics test
# (crates/deja-server/tests/metrics.rs) uses to check the `/metrics` exposition with
# `promtool check metrics`. Prints one line when promtool is already installed.
set -euo pipefail

as_root() {
    if [[ "$(id -u)" == 0 ]]; then "$@"; else sudo "$@"; fi
}

if ! command -v promtool >/dev/null 2>&1; then
    echo "installing promtool (apt package prometheus) ..." >&2
    as_root apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    # The package also installs a Prometheus service on port 9090; the tests only need
    # promtool. Stopping it is best effort (containers often have no init system).
    if command -v systemctl >/dev/null 2>&1; then
        as_root systemctl disable --now prometheus >/dev/null 2>&1 || true
    fi
fi
echo "promtool: $(promtool --version 2>&1 | head -n1)"
