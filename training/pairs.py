"""The labelled development pairs, split exactly as deja splits them.

`deja eval --held-out` and `deja train-verifier` hold out PAWS `split=test` and, in every
other file, the pairs whose FNV-1a hash of `file \\0 a \\0 b` is below 30 mod 100
(`crates/deja/src/train.rs`, `is_held_out`). The pair model never trains on a held-out pair,
so the held-out figures deja reports stay honest for it too.
"""

import csv
import os
from dataclasses import dataclass, field

HOLDOUT_PCT = 30
DEFAULT_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "pairs")


@dataclass
class Pair:
    a: str
    b: str
    label: int
    source: str
    kind: str = ""
    columns: dict = field(default_factory=dict)


def fnv1a(file: str, a: str, b: str) -> int:
    h = 0xCBF29CE484222325
    for byte in file.encode() + b"\0" + a.encode() + b"\0" + b.encode():
        h ^= byte
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def is_held_out(file: str, a: str, b: str, columns: dict, pct: int = HOLDOUT_PCT) -> bool:
    if "paws" in file and "split" in columns:
        return columns["split"] != "dev"
    return fnv1a(file, a, b) % 100 < pct


def load(path: str):
    """All pairs of one csv file as (Pair, held_out)."""
    name = os.path.basename(path)
    out = []
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            a, b, label = row.pop("a"), row.pop("b"), int(row.pop("label"))
            out.append((Pair(a, b, label, name, row.get("pair_type", ""), row),
                        is_held_out(name, a, b, row)))
    return out


def files(directory: str = DEFAULT_DIR):
    return sorted(os.path.join(directory, n) for n in os.listdir(directory) if n.endswith(".csv"))
