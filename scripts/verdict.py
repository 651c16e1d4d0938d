#!/usr/bin/env python3
"""The verdict table of docs/results.md: one row per position method, from the results.csv files
of scripts/experiment.py (one or more per setting), nonoverlapping evaluation.

  python3 scripts/verdict.py SETTING=CSV[,CSV...] [SETTING=...] [--factors 1,2,4,16]

Per setting: perplexity at each factor x L (`-` not evaluated, `refused` where the method cannot
run), and whether the method stays within 2% of its value at L at 16 L (read as: at most 2%
above it; a method that improves past L, as ALiBi does on WikiText-2, stays). Then what the method's
paper claims and whether each setting reproduces it, judged by the rule written next to the
claim (CLAIMS below) against the row it names from the same setting. A method missing from a
setting has `not run` there.
"""
import argparse
import csv
import re

STABLE = 0.02  # "within 2% of its L value at 16x": no more than 2% above it


def flat(m):
    return m[16] <= (1 + STABLE) * m[1]

# method -> (what its paper claims, the row it is judged against, the test over (m, base)); m and
# base map factor -> perplexity in one setting.
CLAIMS = {
    "kerple-log": ("extrapolates better than ALiBi (lower ppl past L)", "alibi",
                   lambda m, b: m[16] < b[16]),
    "kerple-power": ("extrapolates better than ALiBi (lower ppl past L)", "alibi",
                     lambda m, b: m[16] < b[16]),
    "sandwich": ("extrapolates as ALiBi does (flat past L), parameter-free", "alibi",
                 lambda m, b: flat(m)),
    "fire": ("better zero-shot long-context LM than ALiBi and KERPLE", "alibi",
             lambda m, b: m[16] < b[16]),
    "xpos": ("extrapolates better than ALiBi without its loss at L", "alibi",
             lambda m, b: m[16] < b[16] and m[1] <= b[1]),
    "alibi+interpolate": ("slopes x L/L' improve ALiBi past L", "alibi",
                          lambda m, b: m[16] < b[16]),
    "rotary+pi": ("zero-shot PI beats plain rotary past L (fine-tuned: far better)", "rotary",
                  lambda m, b: m[16] < b[16]),
    "rotary+ntk": ("zero-shot extension without fine-tuning: beats plain rotary past L",
                   "rotary", lambda m, b: m[16] < b[16]),
    "rotary+yarn": ("beats PI and NTK zero-shot", "rotary+ntk", lambda m, b: m[16] < b[16]),
}


def load(paths):
    """method -> factor -> ppl (main runs, nonoverlapping; refused lengths absent)."""
    out = {}
    for p in paths:
        with open(p, newline="") as f:
            for r in csv.DictReader(f):
                if r.get("role", "main") != "main" or r["mode"] != "nonoverlapping":
                    continue
                ppl = float(r["ppl"]) if r["status"] == "ok" else None  # None: refused
                # A fine-tune's row names its length (extension_study.py); one row per recipe
                # across settings names it by the training length: "(fine-tuned at 4L)".
                L = int(float(r["train_len"])) if r.get("train_len") else 0
                method = re.sub(r"\(fine-tuned at (\d+)\)",
                                lambda g: f"(fine-tuned at {int(g[1]) // L}L)"
                                if L and int(g[1]) % L == 0 else g[0], r["method"])
                out.setdefault(method, {})[round(float(r["factor"]))] = ppl
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
    head += ["what its paper claims", "reproduced"]
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
            row += ["-" if f not in ppl else "refused" if ppl[f] is None else f"{ppl[f]:.3g}"
                    for f in factors]
            ok = {f: v for f, v in ppl.items() if v is not None}
            row.append(("yes" if flat(ok) else "no")
                       if 16 in ok and 1 in ok else "-")
            claim = CLAIMS.get(m)
            base = {f: v for f, v in table.get(claim[1], {}).items() if v is not None} \
                if claim else {}
            if claim and all(f in ok and f in base for f in (1, 16)):
                verdicts.append(f"{name}: {'yes' if claim[2](ok, base) else 'no'}")
        claim = CLAIMS.get(m)
        row.append(claim[0] if claim else "-")
        row.append("; ".join(verdicts) if claim else "-")
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
