#!/usr/bin/env bash
# Trains deja's pair model on this machine's CPU and writes it where deja ships it:
#
#   training/run.sh                 # about an hour on 2 cores
#   training/run.sh --steps 200     # a quick smoke run (any train.py option passes through)
#
# It makes a virtual environment in training/.venv with the pinned packages of
# requirements.txt (PyPI only), reads the base model that scripts/install-model.sh installs
# and the development pairs in ../shared/data/pairs (held-out splits left out), and writes
# models/deja-pair-model.safetensors with its reference fixture
# (models/deja-pair-model.fixture.json). Then re-fit the stacked verifier: see docs/hit-quality.md ("The pair model on the pair files").
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
VENV="$HERE/.venv"

"$REPO/scripts/install-model.sh" >/dev/null
if [[ ! -x "$VENV/bin/python" ]] || ! cmp -s "$HERE/requirements.txt" "$VENV/requirements.txt"; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet -r "$HERE/requirements.txt"
    cp "$HERE/requirements.txt" "$VENV/requirements.txt"
fi

mkdir -p "$REPO/models"
cd "$HERE"
"$VENV/bin/python" train.py --out "$REPO/models/deja-pair-model.safetensors" \
    --log "$HERE/train.log" "$@"
mv "$REPO/models/deja-pair-model.safetensors.fixture.json" "$REPO/models/deja-pair-model.fixture.json"
echo "wrote $REPO/models/deja-pair-model.safetensors" >&2
