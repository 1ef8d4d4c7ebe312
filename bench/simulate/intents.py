#!/usr/bin/env python3
"""Writes the `text,intent` files `deja simulate` reads, from the labelled pair files in
../shared/data/pairs/ (which stay outside this repository).

- banking77: the intent is the BANKING77 intent (77 of them).
- hwu64: the intent is the HWU64 intent *and its slot values*: "wake me up at four am" and
  "at five am" need different answers, so they are different intents here.

Every text of either column of a pair file is kept once. HWU64's pair file fills in the
slots of a text only in some of its rows: a text takes the slot values it is given anywhere;
a text whose slots are never given, of an intent whose other texts have slots, has an
unknown intent here and is dropped, as is a text given two intents or two slot values.
Slot values are compared lowercased and without a leading article or "this"/"my"
("the statue of liberty" / "statue of liberty").

    python3 bench/simulate/intents.py [--pairs DIR] [--out DIR]
"""

import argparse
import csv
import os
import sys

FILES = {
    "banking77": lambda row, side: (row[f"intent_{side}"], ""),
    "hwu64": lambda row, side: (row[f"intent_{side}"], row[f"slots_{side}"]),
}


def normal_slots(slots):
    """`name=value;…` with each value lowercased and without a leading article."""
    out = []
    for part in slots.split(";"):
        name, _, value = part.partition("=")
        words = value.lower().split()
        while words and words[0] in ("the", "a", "an", "this", "my"):
            words = words[1:]
        out.append(f"{name}={' '.join(words)}")
    return ";".join(sorted(out))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", default=os.path.join(here, "..", "..", "..", "shared", "data", "pairs"))
    ap.add_argument("--out", default=os.path.join(here, "..", "..", "target", "simulate"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for name, intent_of in FILES.items():
        src = os.path.join(args.pairs, f"{name}.csv")
        if not os.path.exists(src):
            sys.exit(f"{src} not found; pass --pairs DIR")
        seen = {}
        with open(src, newline="", encoding="utf-8") as f:
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
        dst = os.path.join(args.out, f"{name}.intents.csv")
        with open(dst, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["text", "intent"])
            for text, intent in intents.items():
                w.writerow([text, intent])
        print(f"{dst}: {len(intents)} texts, {len(set(intents.values()))} intents; dropped: {len(conflicts)} with two labels, {unknown} with unknown slots")


if __name__ == "__main__":
    main()
