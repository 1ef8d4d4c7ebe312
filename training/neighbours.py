"""Semantic-neighbour pairs: what deja's vector search puts in front of the pair model.

Random pairs of two intents are easy negatives; the pairs a cache actually has to judge are
a prompt and its nearest stored neighbours, which are often another intent worded alike
("my card was declined" / "my card payment is pending"). Trained without them, the pair
model served other questions' answers on streams of BANKING77 and HWU64 requests
(`deja simulate`). This module embeds every text of the intent files with the base model
exactly as deja's embedder does (token type 0, mean pooling, L2 norm), takes each text's
`k` nearest other texts and labels the pair by what the two texts ask for
(`pairs.text_intents`: the intent, and for HWU64 its slot values too): same → positive,
different → near-miss.

Only texts outside the held-out text split (`pairs.text_held_out`) are mined, so streams
of the held-out texts (`bench/simulate/intents.py --texts held-out`) measure the model on
neighbour relations it has never seen.
"""

import os

import numpy as np
import torch

import pairs as devpairs


@torch.no_grad()
def embed(model, tok, texts, size=128):
    """Unit vectors of `texts` as deja's embedder computes them."""
    model.eval()
    enc = [tok.encode(t).ids for t in texts]
    out = np.zeros((len(texts), model.dense.in_features), dtype=np.float32)
    order = sorted(range(len(texts)), key=lambda i: len(enc[i]))
    for s in range(0, len(order), size):
        idx = order[s:s + size]
        t = max(len(enc[i]) for i in idx)
        ids = torch.zeros(len(idx), t, dtype=torch.long)
        mask = torch.zeros(len(idx), t, dtype=torch.long)
        for k, i in enumerate(idx):
            ids[k, :len(enc[i])] = torch.tensor(enc[i])
            mask[k, :len(enc[i])] = 1
        out[idx] = model.embed(ids, mask).numpy()
    model.train()
    return out


def _normal(text):
    return " ".join(text.lower().split())


def mine(model, tok, directory, k=6, min_cosine=0.5, cap_per_file=15000, rng=None,
         held_out=False, log=print):
    """`(a, b, label, file)` for each text's `k` nearest neighbours of cosine ≥ `min_cosine`
    among the other texts of its file and split (the training texts, or with `held_out`
    the held-out ones); each unordered pair once, at most `cap_per_file` per file (a seeded
    sample, near-misses up to half of it)."""
    rows = []
    for file in devpairs.INTENT_FILES:
        path = os.path.join(directory, file)
        if not os.path.exists(path):
            continue
        intents, _, _ = devpairs.text_intents(path)
        texts = sorted(t for t in intents if devpairs.text_held_out(file, t) == held_out)
        vecs = embed(model, tok, texts)
        sims = vecs @ vecs.T
        np.fill_diagonal(sims, -1.0)
        seen, out = set(), []
        for i in range(len(texts)):
            for j in np.argpartition(-sims[i], k)[:k]:
                j = int(j)
                if sims[i, j] < min_cosine or _normal(texts[i]) == _normal(texts[j]):
                    continue
                key = (min(i, j), max(i, j))
                if key in seen:
                    continue
                seen.add(key)
                out.append((texts[i], texts[j], int(intents[texts[i]] == intents[texts[j]]), file))
        if rng is not None:
            rng.shuffle(out)
        # Near-misses are what a stream gets wrong: up to half the cap, positives the rest.
        near = [r for r in out if r[2] == 0][:cap_per_file // 2]
        out = near + [r for r in out if r[2] == 1][:cap_per_file - len(near)]
        neg = sum(1 for r in out if r[2] == 0)
        split = "held-out" if held_out else "training"
        log(f"  neighbours {file} ({split}): {len(texts)} texts, {len(out)} pairs, {neg} near-misses")
        rows += out
    return rows


def main():
    """Writes the held-out texts' neighbour pairs as pair files (`a,b,label,pair_type`), for
    calibrating and measuring a stacked verifier on the pairs a stream brings:

        training/.venv/bin/python training/neighbours.py --out target/neighbours
        deja eval --held-out --pairs ../shared/data/pairs/*.csv target/neighbours/*.csv ...
    """
    import argparse
    import csv
    import random

    from tokenizers import Tokenizer

    import bert

    ap = argparse.ArgumentParser(description=main.__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", default=devpairs.DEFAULT_DIR)
    ap.add_argument("--model-dir", default=bert.default_model_dir())
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "target", "neighbours"))
    ap.add_argument("--per-file", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=17)
    args = ap.parse_args()
    tok = Tokenizer.from_file(os.path.join(args.model_dir, "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length=128, strategy="longest_first")
    model, _ = bert.load_base(args.model_dir)
    rows = mine(model, tok, args.pairs, cap_per_file=args.per_file,
                rng=random.Random(args.seed), held_out=True)
    os.makedirs(args.out, exist_ok=True)
    for file in devpairs.INTENT_FILES:
        name = file.removesuffix(".csv") + "_neighbours.csv"
        with open(os.path.join(args.out, name), "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["a", "b", "label", "pair_type"])
            for a, b, label, src in rows:
                if src == file:
                    w.writerow([a, b, label, "neighbour_same" if label else "neighbour_other"])
        print(os.path.join(args.out, name))


if __name__ == "__main__":
    main()
