"""Writes the pair-model file deja ships, and the reference fixture its Rust test reads.

The file is a safetensors file (format `deja-pair-model/1` in its metadata) holding, in f16,
only the tensors that differ from the base model's: every trunk weight but the word
embeddings, and the head (`pair.*`). Its metadata records

- `format`: `deja-pair-model/1`
- `base`: the base model's fingerprint, as deja computes it (BLAKE3 of `config.json`,
  `tokenizer.json`, `1_Pooling/config.json` and `model.safetensors`, each prefixed by its
  name; first 12 hex digits), so the file is never combined with other base weights;
- `payload_blake3`: BLAKE3 over every tensor in name order (name, a zero byte, its raw
  little-endian bytes), checked at load;
- `pooling` (`mean`), `head` (`tanh`), `max_tokens` (128) and `trained` (how it was made).
"""

import json
import os

import blake3
import numpy as np
import torch
from safetensors.numpy import save_file, load_file

import bert
import e5

FORMAT = "deja-pair-model/1"


def fingerprint(model_dir):
    h = blake3.blake3()
    for name in ["config.json", "tokenizer.json", "1_Pooling/config.json", "model.safetensors"]:
        h.update(name.encode())
        with open(os.path.join(model_dir, name), "rb") as f:
            h.update(f.read())
    return h.hexdigest()[:12]


def payload_hash(tensors):
    h = blake3.blake3()
    for name in sorted(tensors):
        h.update(name.encode() + b"\0")
        h.update(np.ascontiguousarray(tensors[name]).astype("<f2").tobytes())
    return h.hexdigest()


def is_e5(args):
    return getattr(args, "base", "minilm") == "e5"


def name_in_file(args, cfg, name):
    return e5.file_name(name, cfg) if is_e5(args) else bert.file_name(name)


def tensors_of(model, cfg, args):
    out = {}
    for name, p in model.named_parameters():
        if name == "bert.word.weight":
            continue
        out[name_in_file(args, cfg, name)] = p.detach().float().numpy().astype(np.float16)
    return out


def write(model, cfg, args, path, tok):
    tensors = tensors_of(model, cfg, args)
    meta = {
        "format": FORMAT,
        # multilingual-e5-small's pair model names its base by the E5S1 file's BLAKE3
        # (deja's `local:e5-small-<fp>`), the MiniLM one by the folder's fingerprint.
        "base": e5.fingerprint(args.e5_file) if is_e5(args) else fingerprint(args.model_dir),
        "model": "multilingual-e5-small" if is_e5(args) else "all-MiniLM-L6-v2",
        "payload_blake3": payload_hash(tensors),
        "pooling": "mean",
        "head": "tanh",
        "max_tokens": "128",
        "trained": (f"training/train.py --base {getattr(args, 'base', 'minilm')} seed {args.seed}, {args.steps} steps of {args.batch} pairs, "
                    f"lr {args.lr} (head {args.head_lr}), {args.generated} generated pairs, "
                    f"{getattr(args, 'neighbours', 0)} semantic-neighbour pairs per intent file; "
                    "development pairs without their held-out splits (intent files labelled "
                    "by what each side asks)"),
    }
    tmp = path + ".tmp"
    save_file(tensors, tmp, metadata=meta)
    os.replace(tmp, path)
    write_fixture(path, args, tok)


# Pairs for the reference fixture: the Rust runtime must give the same logits.
FIXTURE = [
    ("How do I reset my password?", "How can I reset my password?"),
    ("How do I reset my password?", "How do I change my email address?"),
    ("what is the capital of France", "What is the capital of France?"),
    ("Which city is the capital of France?", "What is the capital of France?"),
    ("I forgot my password, how do I reset it?", "How do I reset my password?"),
    ("Cancel my subscription please", "How do I cancel my subscription?"),
    ("do u ship internationaly", "do you ship internationally?"),
    ("How do I enable dark mode?", "How do I disable dark mode?"),
    ("Where is order #4821?", "Where is order #4812?"),
    ("Does the seller pay the buyer's fees?", "Does the buyer pay the seller's fees?"),
    ("How do I change my seat?", "How do I change my seat after check-in closes?"),
    ("Convert 5 kg to grams", "Convert 5 lb to grams"),
    ("How do I pin a message?", "How do I unpin a message?"),
    ("Comment réinitialiser mon mot de passe ?", "Comment réinitialiser mon mot de passe"),
    ("Hoe reset ik mijn wachtwoord?", "hoe reset ik mijn wachtwoord"),
    ("如何重置我的密码", "怎么重置我的密码"),
    ("a", "b"),
    ("x " * 200, "y " * 200),
]

# The multilingual model's fixture adds pairs in the languages it is for.
FIXTURE_E5 = FIXTURE + [
    ("Comment annuler ma commande ?", "Comment suivre ma commande ?"),
    ("Hoe laat gaat de winkel open?", "Hoe laat gaat de winkel dicht?"),
    ("Wie kann ich mein Passwort ändern?", "Wie ändere ich mein Passwort?"),
    ("¿Cómo cancelo mi suscripción?", "¿Cómo puedo cancelar mi suscripción?"),
    ("如何关闭自动续费", "如何开启自动续费"),
    ("東京から大阪まで新幹線でどのくらいかかりますか", "大阪から東京まで新幹線でどのくらいかかりますか"),
    ("Как сбросить пароль?", "Как мне сбросить пароль?"),
    ("كيف ألغي طلبي؟", "كيف أتتبع طلبي؟"),
    ("How do I cancel my order?", "Comment annuler ma commande ?"),
]


def write_fixture(path, args, tok):
    # The model as deja will run it: weights read back from the f16 file.
    if is_e5(args):
        model, cfg, _, _ = e5.load_base(args.e5_file)
    else:
        model, cfg = bert.load_base(args.model_dir)
    saved = load_file(path)
    state = dict(model.state_dict())
    by_file = {name_in_file(args, cfg, n): n for n, _ in model.named_parameters()
               if n != "bert.word.weight"}
    for fname, arr in saved.items():
        state[by_file[fname]] = torch.from_numpy(arr.astype(np.float32))
    model.load_state_dict(state)
    model.eval()
    cases = []
    with torch.no_grad():
        for a, b in FIXTURE_E5 if is_e5(args) else FIXTURE:
            e = tok.encode(a, b)
            ids = torch.tensor([e.ids])
            logit = model(ids, torch.tensor([e.type_ids]), torch.ones_like(ids)).item()
            cases.append({"a": a, "b": b, "ids": e.ids, "type_ids": e.type_ids, "logit": logit})
    with open(path + ".fixture.json", "w") as f:
        json.dump({"format": FORMAT, "cases": cases}, f, ensure_ascii=False, indent=1)
