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


# --------------------------------------------------------------------------------------
# What each text of the intent files asks for

def normal_slots(slots: str) -> str:
    """`name=value;…` with each value lowercased and without a leading article, sorted."""
    out = []
    for part in slots.split(";"):
        name, _, value = part.partition("=")
        words = value.lower().split()
        while words and words[0] in ("the", "a", "an", "this", "my"):
            words = words[1:]
        out.append(f"{name}={' '.join(words)}")
    return ";".join(sorted(out))


# The intent files, and how a row gives the intent of its side `a` or `b`. HWU64's intent is
# its intent *and its slot values*: "wake me up at four am" and "at five am" need different
# answers.
INTENT_FILES = {
    "banking77.csv": lambda row, side: (row[f"intent_{side}"], ""),
    "hwu64.csv": lambda row, side: (row[f"intent_{side}"], row.get(f"slots_{side}", "")),
}


def text_intents(path: str):
    """Every text of an intent file with what it asks for: `(intents, conflicts, unknown)`.

    `intents` maps a text to its intent (`intent|slots` where the file gives slots). A text
    given two intents or two slot values is a conflict and left out; a text whose slots are
    never given, of an intent whose other texts have slots, is unknown and left out.
    """
    intent_of = INTENT_FILES[os.path.basename(path)]
    seen = {}
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            for side in ("a", "b"):
                text = row[side].strip()
                if text:
                    seen.setdefault(text, set()).add(intent_of(row, side))
    with_slots = {intent for labels in seen.values() for intent, s in labels if s}
    intents, conflicts, unknown = {}, set(), 0
    for text, labels in seen.items():
        names = {intent for intent, _ in labels}
        slots = {normal_slots(s) for _, s in labels if s}
        if len(names) > 1 or len(slots) > 1:
            conflicts.add(text)
            continue
        (intent,) = names
        if not slots and intent in with_slots:
            unknown += 1
            continue
        intents[text] = f"{intent}|{slots.pop()}" if slots else intent
    return intents, conflicts, unknown


def text_held_out(file: str, text: str, pct: int = HOLDOUT_PCT) -> bool:
    """Whether a text of an intent file is held out of the mined neighbour pairs (and so
    may be used to measure a stream: `bench/simulate/intents.py --texts held-out`)."""
    return fnv1a("text:" + file, text, "") % 100 < pct
