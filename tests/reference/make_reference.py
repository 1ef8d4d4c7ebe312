"""Makes minilm_reference.json: sentence embeddings of all-MiniLM-L6-v2 computed by an
implementation independent of deja's Rust code.

It is a plain float64 numpy transcription of what sentence-transformers does for this model
(BertModel forward, mean pooling over the attention mask, L2 normalisation), with tokens from
the `tokenizers` Python package reading the model's own tokenizer.json, truncated at the
model's max_seq_length (256) and not padded. CPU torch is not installable from PyPI alone
without pulling CUDA wheels, hence numpy.

Usage (from the repository root, with a venv outside the repository):
    python3 -m venv /tmp/refvenv && /tmp/refvenv/bin/pip install numpy tokenizers safetensors
    scripts/install-model.sh
    /tmp/refvenv/bin/python tests/reference/make_reference.py [MODEL_DIR]

CI does not run this; it only compares the Rust embedder with the committed JSON.
"""

import json
import math
import os
import sys

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

SENTENCES = [
    "How do I reset my password?",
    "Comment puis-je réinitialiser mon mot de passe ?",
    "我怎样才能重置我的密码？",
    "Hoe kan ik mijn wachtwoord opnieuw instellen?",
    "Crème brûlée, naïve façade — déjà vu! (Ça coûte 12,50 €; «très» cher...)",
    "The quick brown fox jumps over the lazy dog while the cat, who had been sleeping on "
    "the warm windowsill all afternoon, slowly opens one eye and wonders why anyone would "
    "ever bother jumping over a dog when walking around it is so much easier.",
    "Write a Python function that returns the n-th Fibonacci number using memoization.",
    "hi",
    # Longer than max_seq_length: checks truncation at 256 tokens.
    " ".join(["semantic caching saves tokens and latency for repeated questions"] * 40),
]


def model_dir():
    if len(sys.argv) > 1:
        return sys.argv[1]
    if os.environ.get("DEJA_MODEL_DIR"):
        return os.environ["DEJA_MODEL_DIR"]
    base = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return os.path.join(base, "deja", "models", "all-MiniLM-L6-v2")


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def gelu(x):
    erf = np.vectorize(math.erf)
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def embed(ids, w, cfg):
    g = lambda name: w[name].astype(np.float64)  # noqa: E731
    n = len(ids)
    h = g("embeddings.word_embeddings.weight")[ids]
    h = h + g("embeddings.position_embeddings.weight")[:n]
    h = h + g("embeddings.token_type_embeddings.weight")[0]
    eps = cfg["layer_norm_eps"]
    h = layer_norm(h, g("embeddings.LayerNorm.weight"), g("embeddings.LayerNorm.bias"), eps)
    heads = cfg["num_attention_heads"]
    d = cfg["hidden_size"] // heads
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        lin = lambda x, name: x @ g(p + name + ".weight").T + g(p + name + ".bias")  # noqa: E731
        q = lin(h, "attention.self.query").reshape(n, heads, d).transpose(1, 0, 2)
        k = lin(h, "attention.self.key").reshape(n, heads, d).transpose(1, 0, 2)
        v = lin(h, "attention.self.value").reshape(n, heads, d).transpose(1, 0, 2)
        s = q @ k.transpose(0, 2, 1) / math.sqrt(d)
        s = np.exp(s - s.max(-1, keepdims=True))
        s = s / s.sum(-1, keepdims=True)
        ctx = (s @ v).transpose(1, 0, 2).reshape(n, heads * d)
        a = lin(ctx, "attention.output.dense") + h
        h = layer_norm(a, g(p + "attention.output.LayerNorm.weight"),
                       g(p + "attention.output.LayerNorm.bias"), eps)
        f = gelu(lin(h, "intermediate.dense"))
        o = lin(f, "output.dense") + h
        h = layer_norm(o, g(p + "output.LayerNorm.weight"), g(p + "output.LayerNorm.bias"), eps)
    # Mean pooling over all (unpadded) tokens, [CLS] and [SEP] included, as sentence-transformers.
    pooled = h.mean(0)
    return pooled / np.linalg.norm(pooled)


def main():
    d = model_dir()
    cfg = json.load(open(os.path.join(d, "config.json")))
    max_len = json.load(open(os.path.join(d, "sentence_bert_config.json")))["max_seq_length"]
    tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length=max_len)
    w = load_file(os.path.join(d, "model.safetensors"))
    w = {k.removeprefix("bert."): v for k, v in w.items()}
    out = {
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "made_by": "tests/reference/make_reference.py (float64 numpy BERT, tokenizers "
                   + __import__("tokenizers").__version__ + ")",
        "max_seq_length": max_len,
        "sentences": [],
    }
    for text in SENTENCES:
        enc = tok.encode(text)
        vec = embed(np.array(enc.ids), w, cfg)
        out["sentences"].append({
            "text": text,
            "tokens": len(enc.ids),
            "vector": [round(float(x), 6) for x in vec],
        })
        print(f"{len(enc.ids):4d} tokens  {text[:60]!r}", file=sys.stderr)
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "minilm_reference.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(path, file=sys.stderr)


if __name__ == "__main__":
    main()
