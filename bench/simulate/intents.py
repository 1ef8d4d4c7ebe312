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
("the statue of liberty" / "statue of liberty"). The rules live in training/pairs.py,
which the pair model's training shares.

`--texts held-out` keeps only the texts the pair model's mined neighbour pairs never use
(training/neighbours.py), so a stream of them measures the model on relations it has not
seen; they are written as NAME.held-out.intents.csv.

    python3 bench/simulate/intents.py [--pairs DIR] [--out DIR] [--texts all|held-out]
"""

import argparse
import csv
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "training"))
import pairs as devpairs  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", default=os.path.join(HERE, "..", "..", "..", "shared", "data", "pairs"))
    ap.add_argument("--out", default=os.path.join(HERE, "..", "..", "target", "simulate"))
    ap.add_argument("--texts", choices=("all", "held-out"), default="all")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for file in devpairs.INTENT_FILES:
        name = file.removesuffix(".csv")
        src = os.path.join(args.pairs, file)
        if not os.path.exists(src):
            sys.exit(f"{src} not found; pass --pairs DIR")
        intents, conflicts, unknown = devpairs.text_intents(src)
        if args.texts == "held-out":
            intents = {t: i for t, i in intents.items() if devpairs.text_held_out(file, t)}
            name += ".held-out"
        dst = os.path.join(args.out, f"{name}.intents.csv")
        with open(dst, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["text", "intent"])
            for text, intent in intents.items():
                w.writerow([text, intent])
        print(f"{dst}: {len(intents)} texts, {len(set(intents.values()))} intents; dropped: {len(conflicts)} with two labels, {unknown} with unknown slots")


if __name__ == "__main__":
    main()
