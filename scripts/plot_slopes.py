#!/usr/bin/env python3
"""Fixed against trainable ALiBi slopes (scripts/slopes_study.sh): a markdown table of perplexity
by evaluation length and mode, and a plot of the learned slopes per head against the fixed.

    python3 scripts/plot_slopes.py FIXED_RUN TRAINABLE_RUN --out slopes.png --table slopes.md

Each run folder holds eval-nonoverlapping.json and eval-sliding.json (`alibi eval --json`); the
trainable run's JSON carries `learned_slopes`.
"""
import argparse
import json
import math
import os


def load(run, mode):
    return json.load(open(os.path.join(run, f"eval-{mode}.json")))


def fixed_slopes(n, bias_max=8.0):
    """The paper's slopes for n heads (position/alibi.cpp's rule)."""
    def pow2(k):
        start = 2.0 ** (-bias_max / k)
        return [start ** (h + 1) for h in range(k)]
    c = 1 << int(math.floor(math.log2(n)))
    s = pow2(c)
    return s + pow2(2 * c)[0::2][: n - c]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("fixed")
    p.add_argument("trainable")
    p.add_argument("--out", required=True)
    p.add_argument("--table", required=True)
    a = p.parse_args()
    lines = ["| slopes | mode | " + " | ".join(
        str(r["length"]) for r in load(a.fixed, "nonoverlapping")["results"]) + " |"]
    lines.append("|---|---|" + "---:|" * len(load(a.fixed, "nonoverlapping")["results"]))
    for name, run in (("fixed", a.fixed), ("trainable", a.trainable)):
        for mode in ("nonoverlapping", "sliding"):
            res = {r["length"]: r["ppl"] for r in load(run, mode)["results"]}
            cells = [f"{res[r['length']]:.2f}" if r["length"] in res else "-"
                     for r in load(a.fixed, "nonoverlapping")["results"]]
            lines.append(f"| {name} | {mode} | " + " | ".join(cells) + " |")
    learned = load(a.trainable, "nonoverlapping")["learned_slopes"]
    fixed = fixed_slopes(len(learned))
    lines += ["", "| head | fixed slope | learned slope | ratio |", "|---:|---:|---:|---:|"]
    lines += [f"| {h + 1} | {f:.5g} | {m:.5g} | {m / f:.3f} |"
              for h, (f, m) in enumerate(zip(fixed, learned))]
    open(a.table, "w").write("\n".join(lines) + "\n")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 3.5))
    heads = range(1, len(learned) + 1)
    ax.semilogy(heads, fixed, "o-", label="fixed (the paper's)")
    ax.semilogy(heads, learned, "s-", label="trainable, after training")
    ax.semilogy(heads, [2 * f for f in fixed], ":", color="gray", label="its bound, 2 x fixed")
    ax.set_xlabel("head")
    ax.set_ylabel("slope m_h")
    ax.set_title("ALiBi slopes, WikiText-2, L = 64 (shared by all layers)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(a.out, dpi=120)
    print(f"wrote {a.table} and {a.out}")


if __name__ == "__main__":
    main()
