#!/usr/bin/env python3
"""The masked-LM study's table (scripts/mlm_study.sh): masked-token perplexity and accuracy
of each method's run at each evaluated length, from WORK/<method>-L128/eval.json.

    python3 scripts/mlm_table.py WORK > WORK/results.md
"""
import json
import os
import sys

METHODS = ["alibi", "none", "sinusoidal", "t5", "rotary", "learned"]
LENGTHS = [128, 256, 512, 1024, 2048]


def main():
    work = sys.argv[1]
    runs = {}
    for m in METHODS:
        path = os.path.join(work, f"{m}-L128", "eval.json")
        if os.path.exists(path):
            with open(path) as f:
                runs[m] = {r["length"]: r for r in json.load(f)["results"]}
    head = "| method | " + " | ".join(f"{L} ({L // 128}x)" for L in LENGTHS) + " |"
    rule = "|---|" + "---:|" * len(LENGTHS)
    for title, key, fmt in [("Masked-token perplexity", "ppl", "{:.1f}"),
                            ("Masked-token accuracy (%)", "accuracy", "{:.1f}")]:
        print(f"{title}, trained at L = 128, first 32,768 tokens of test, nonoverlapping:\n")
        print(head)
        print(rule)
        for m, res in runs.items():
            cells = [fmt.format(res[L][key] * (100 if key == "accuracy" else 1))
                     if L in res else "refused" for L in LENGTHS]
            print(f"| {m} | " + " | ".join(cells) + " |")
        print()
    scored = {r["tokens_scored"] for res in runs.values() for r in res.values()}
    print(f"Masked tokens scored at every length: {', '.join(map(str, sorted(scored)))}.")


if __name__ == "__main__":
    main()
