#!/usr/bin/env bash
# Installs Chromium and its WebDriver from Debian's `chromium` and `chromium-driver`
# packages, which the dashboard test (crates/deja-server/tests/dashboard.rs) drives headless
# to load /dashboard in a real browser. Prints one line when both are already installed.
set -euo pipefail

as_root() {
    if [[ "$(id -u)" == 0 ]]; then "$@"; else sudo "$@"; fi
}

if [[ ! -x /usr/bin/chromium || ! -x /usr/bin/chromedriver ]]; then
    echo "installing chromium and chromium-driver (apt) ..." >&2
    as_root apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends \
        chromium chromium-driver fonts-dejavu-core >/dev/null
fi
echo "chromium: $(/usr/bin/chromium --version 2>/dev/null | head -n1); chromedriver: $(/usr/bin/chromedriver --version 2>/dev/null | head -n1)"
