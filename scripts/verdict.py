#!/usr/bin/env python3
"""The verdict table of docs/results.md: one row per position method, from the results.csv files
of scripts/experiment.py (one or more per setting), nonoverlapping evaluation.

  python3 scripts/verdict.py SETTING=CSV[,CSV...] [SETTING=...] [--factors 1,2,4,16]

Per setting: perplexity at each factor x L, and whether the method stays within 2% of its value
at L at 16 L (`yes`, `no`, or `-` where it was not evaluated that far). Then what the method's
paper claims against ALiBi and whether the setting where both were run reproduces it, judged
by the rule written next to the claim (CLAIMS below); ALiBi's row of the same setting is the
comparison. A method missing from a setting has `not run` there.
"""
import argparse
import csv

STABLE = 0.02  # "within 2% of its L value at 16x"

# method -> (the claim against ALiBi, as its paper states it; the test over (m, alibi)).
# m and alibi map factor -> perplexity in one setting.
CLAIMS = {
    "kerple-log": ("extrapolates better than ALiBi (lower ppl past L)",
                   lambda m, a: m[16] < a[16]),
    "kerple-power": ("extrapolates better than ALiBi (lower ppl past L)",
                     lambda m, a: m[16] < a[16]),
    "sandwich": ("extrapolates as ALiBi does (flat past L), parameter-free",
                 lambda m, a: abs(m[16] - m[1]) <= STABLE * m[1]),
    "fire": ("better zero-shot long-context LM than ALiBi and KERPLE",
             lambda m, a: m[16] < a[16]),
    "xpos": ("extrapolates better than ALiBi without its loss at L",
             lambda m, a: m[16] < a[16] and m[1] <= a[1]),
}


def load(paths):
    """method -> factor -> ppl (main runs, nonoverlapping; refused lengths absent)."""
    out = {}
    for p in paths:
        with open(p, newline="") as f:
            for r in csv.DictReader(f):
                if r.get("role", "main") != "main" or r["mode"] != "nonoverlapping":
                    continue
                if r["status"] != "ok":
                    continue
                out.setdefault(r["method"], {})[round(float(r["factor"]))] = float(r["ppl"])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("settings", nargs="+", help="NAME=results.csv[,more.csv]")
    ap.add_argument("--factors", default="1,2,4,16", help="evaluation lengths as multiples of L")
    a = ap.parse_args()
    factors = [int(x) for x in a.factors.split(",")]
    settings = []
    for s in a.settings:
        name, _, files = s.partition("=")
        if not files:
            ap.error(f"setting '{s}': expected NAME=results.csv[,more.csv]")
        settings.append((name, load(files.split(","))))
    methods = []
    for _, table in settings:
        methods += [m for m in table if m not in methods]

    head = ["method"]
    for name, _ in settings:
        head += [f"{name} {f}L" for f in factors] + [f"{name} flat at 16L"]
    head += ["paper's claim against ALiBi", "reproduced"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for m in methods:
        row = [m]
        verdicts = []
        for name, table in settings:
            ppl = table.get(m)
            if ppl is None:
                row += ["not run"] * (len(factors) + 1)
                continue
            row += [f"{ppl[f]:.3g}" if f in ppl else "refused" for f in factors]
            row.append(("yes" if abs(ppl[16] - ppl[1]) <= STABLE * ppl[1] else "no")
                       if 16 in ppl and 1 in ppl else "-")
            claim = CLAIMS.get(m)
            alibi = table.get("alibi", {})
            if claim and all(f in ppl and f in alibi for f in (1, 16)):
                verdicts.append(f"{name}: {'yes' if claim[1](ppl, alibi) else 'no'}")
        claim = CLAIMS.get(m)
        row.append(claim[0] if claim else "-")
        row.append("; ".join(verdicts) if claim else "-")
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
