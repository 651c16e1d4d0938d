#!/usr/bin/env python3
"""Perplexity against evaluation length (log x), in the manner of Figure 1 of Press et al.

  python3 scripts/plot.py RESULTS.csv [MORE.csv ...] --out plot.png [--title T] [--log-y]

Reads the results.csv files of scripts/experiment.py and draws one panel per (training length,
evaluation mode): a line per position method, the training length as a dotted vertical line,
and the comparison run (sinusoidal trained at 2L) as a star. As in the paper's figure the y axis
is linear and clipped: points above it are drawn as triangles on the top edge with their value.
Needs matplotlib (Debian: python3-matplotlib); run by a Python without it, it re-runs itself
with /usr/bin/python3.
"""
import argparse
import csv
import os
import sys

try:
    import matplotlib
except ImportError:
    if os.path.exists("/usr/bin/python3") and os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    sys.exit("plot.py: matplotlib is missing; install python3-matplotlib (bash scripts/setup.sh)")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

STYLE = {  # colours and markers kept fixed so that panels and figures compare at a glance
    "alibi": ("tab:blue", "o"), "sinusoidal": ("tab:orange", "s"), "rotary": ("tab:green", "D"),
    "t5": ("tab:red", "v"), "learned": ("tab:purple", "P"), "none": ("tab:gray", "X"),
    "kerple-log": ("tab:brown", "<"), "kerple-power": ("tab:pink", ">"),
    "sandwich": ("tab:olive", "h"), "fire": ("tab:cyan", "*"), "xpos": ("gold", "d"),
}
ORDER = list(STYLE)
CLIP = 2.0  # the y axis ends at CLIP x the worst perplexity at the training length


def load(paths):
    """The rows of every file; a (method, role, lengths, mode) already read is kept from the
    first file that has it (a study's rerun of a method draws no second line)."""
    rows, seen = [], set()
    for p in paths:
        with open(p, newline="") as f:
            for r in csv.DictReader(f):
                key = (r["method"], r.get("role"), r["train_len"], r["eval_len"], r["mode"])
                if key in seen:
                    continue
                seen.add(key)
                r["train_len"], r["eval_len"] = int(r["train_len"]), int(r["eval_len"])
                r["ppl"] = float(r["ppl"]) if r["status"] == "ok" else None
                rows.append(r)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("csv", nargs="+", help="results.csv files")
    ap.add_argument("--out", required=True, help="PNG to write")
    ap.add_argument("--title", default="", help="figure title")
    ap.add_argument("--log-y", action="store_true", help="log y axis, nothing clipped")
    a = ap.parse_args()
    rows = load(a.csv)
    # A panel per (training length, mode) of the main runs; the comparison run (sinusoidal
    # trained at 2L) is a star in the panel of L.
    main_rows = [r for r in rows if r.get("role", "main") != "compare"]
    panels = sorted({(r["train_len"], r["mode"]) for r in main_rows})
    n = len(panels)
    cols = min(n, 2)
    rows_n = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows_n, cols, figsize=(6.4 * cols, 4.2 * rows_n + 0.8), squeeze=False)
    legend = {}  # label -> handle, across panels
    for ax, (tl, mode) in zip(axes.flat, panels):
        pr = [r for r in main_rows if r["train_len"] == tl and r["mode"] == mode]
        comp = [r for r in rows if r.get("role") == "compare" and r["train_len"] == 2 * tl and
                r["mode"] == mode]
        at_l = [r["ppl"] for r in pr if r["eval_len"] == tl and r["ppl"] is not None]
        ok = [r["ppl"] for r in pr if r["ppl"] is not None] + [r["ppl"] for r in comp if r["ppl"]]
        if not ok:
            continue
        top = None if a.log_y else CLIP * max(at_l or ok)
        bottom = 0.9 * min(ok)
        stacked = {}
        for m in sorted({r["method"] for r in pr}, key=lambda m: ORDER.index(m) if m in ORDER else 99):
            colour, marker = STYLE.get(m, ("black", "."))
            mr = sorted((r for r in pr if r["method"] == m), key=lambda r: r["eval_len"])
            xs = [r["eval_len"] for r in mr if r["ppl"] is not None]
            ys = [r["ppl"] for r in mr if r["ppl"] is not None]
            refused = any(r["ppl"] is None for r in mr)
            label = m + (" (cannot run past L)" if refused else "")
            if top is not None:
                clipped = [(x, y) for x, y in zip(xs, ys) if y > top]
                ys_plot = [min(y, top) for y in ys]
            else:
                clipped, ys_plot = [], ys
            ax.plot(xs, ys_plot, color=colour, marker=marker, markersize=5, label=label)
            for x, y in clipped:  # stacked labels, one row per clipped method at that x
                k = stacked.setdefault(x, 0)
                stacked[x] += 1
                ax.plot([x], [top], color=colour, marker="^", markersize=9, clip_on=False)
                ax.annotate(f"{y:.3g}", (x, top), textcoords="offset points",
                            xytext=(0, -14 - 10 * k), ha="center", fontsize=7, color=colour)
        for r in comp:
            if r["ppl"] is not None:
                ax.plot([r["eval_len"]], [min(r["ppl"], top or r["ppl"])], color="black", marker="*",
                        markersize=12, linestyle="none", label=f"sinusoidal trained at {2 * tl}")
        ax.axvline(tl, color="black", linestyle=":", linewidth=1)
        ax.set_xscale("log", base=2)
        if a.log_y:
            ax.set_yscale("log")
        else:
            ax.set_ylim(bottom, top)
        ticks = sorted({r["eval_len"] for r in pr})
        ax.set_xticks(ticks)
        ax.set_xticklabels([str(t) for t in ticks])
        ax.set_xlabel("evaluation length (tokens)")
        ax.set_ylabel("perplexity")
        stride = next((r["stride"] for r in pr if r["mode"] == "sliding"), "")
        ax.set_title(f"trained at L = {tl}, " + ("nonoverlapping" if mode == "nonoverlapping"
                                                  else f"sliding (stride {stride})"), fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
        for h, lab in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(lab, h)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    if a.title:
        fig.suptitle(a.title)
    # One legend for all panels, under them, so that it hides no curve.
    fig.legend(list(legend.values()), list(legend.keys()), loc="lower center",
               ncol=min(4, len(legend)), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.06 + 0.02 * ((len(legend) - 1) // 4), 1, 1))
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    fig.savefig(a.out, dpi=120)
    print(f"plot.py: wrote {a.out}")


if __name__ == "__main__":
    main()
