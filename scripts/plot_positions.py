#!/usr/bin/env python3
"""The early-token curse: mean loss at each position inside the window, from the CSV files of
`alibi eval --per-position` (length,position,count,mean_loss).

  python3 scripts/plot_positions.py LABEL=FILE.csv [LABEL=FILE.csv ...] --out positions.png

One panel per first word of the labels (e.g. "alibi sliding=..." goes to the panel "alibi"), one
line per (file, window length); x is the position inside the window (log scale), y the mean
loss in nats of the targets scored there, averaged over --bins-per-octave log-spaced bins
(weighted by the targets scored). Positions scored by fewer than --min-share of the busiest
position's targets are left out: in sliding evaluation the early positions are scored only in the
first window. With --table, also writes the mean loss over position ranges 1, 2-4, 5-16, 17-64,
... (powers of 4; target-weighted; the same positions left out) of each (file, window length)
as a markdown table. Needs matplotlib (Debian: python3-matplotlib); run by
a Python without it, it re-runs itself with /usr/bin/python3.
"""
import argparse
import csv
import math
import os
import sys

try:
    import matplotlib
except ImportError:
    if os.path.exists("/usr/bin/python3") and os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    sys.exit("plot_positions.py: matplotlib is missing; install python3-matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", help="LABEL=per-position.csv")
    ap.add_argument("--out", required=True, help="PNG to write")
    ap.add_argument("--title", default="mean loss at each position of the window")
    ap.add_argument("--bins-per-octave", type=int, default=4, help="0: every position")
    ap.add_argument("--min-share", type=float, default=0.1)
    ap.add_argument("--table", default="", help="markdown table of loss by position range to write")
    a = ap.parse_args()
    specs = []
    for spec in a.files:
        label, _, path = spec.rpartition("=")
        specs.append((label or os.path.basename(path), path))
    panels = list(dict.fromkeys(label.split()[0] for label, _ in specs))
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.5), sharey=True,
                             squeeze=False)
    table = []  # (label, length, {range: mean loss})
    for label, path in specs:
        ax = axes[0][panels.index(label.split()[0])]
        curves = {}
        with open(path, newline="") as f:
            for r in csv.DictReader(f):
                curves.setdefault(int(r["length"]), []).append(
                    (int(r["position"]) + 1, int(r["count"]), float(r["mean_loss"])))
        for length, pts in sorted(curves.items()):
            top = max(c for _, c, _ in pts)
            table.append((label, length, range_means(pts, a.min_share * top)))
            bins = {}  # bin -> [count-weighted position, count-weighted loss, count]
            for pos, count, loss in pts:
                if count == 0 or count < a.min_share * top:
                    continue
                key = pos if a.bins_per_octave == 0 else int(math.log2(pos) * a.bins_per_octave)
                b = bins.setdefault(key, [0.0, 0.0, 0])
                b[0] += pos * count
                b[1] += loss * count
                b[2] += count
            xs = [b[0] / b[2] for _, b in sorted(bins.items())]
            ys = [b[1] / b[2] for _, b in sorted(bins.items())]
            ax.plot(xs, ys, linewidth=1.2, marker=".", label=f"{label}, windows of {length}")
    for ax, panel in zip(axes[0], panels):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("position inside the window (1 = first token)")
        ax.set_title(panel, fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("mean loss (nats)")
    fig.suptitle(a.title, fontsize=10)
    fig.tight_layout()
    fig.savefig(a.out, dpi=120)
    print(f"plot_positions.py: wrote {a.out}")
    if a.table:
        longest = max(t[1] for t in table)
        ranges = [r for r in position_ranges(longest)]
        lines = ["| model, window | " + " | ".join(f"{lo}" if lo == hi else f"{lo}-{hi}"
                                                   for lo, hi in ranges) + " |",
                 "|---|" + "---:|" * len(ranges)]
        for label, length, means in table:
            lines.append(f"| {label}, {length} | " + " | ".join(
                f"{means[r]:.3f}" if r in means else "" for r in ranges) + " |")
        with open(a.table, "w") as f:
            f.write("\n".join(lines) + "\n")
        print(f"plot_positions.py: wrote {a.table}")


def position_ranges(longest):
    """1, 2-4, 5-16, 17-64, ...: ranges of positions (1-based) up to `longest`."""
    out, lo, hi = [(1, 1)], 2, 4
    while lo <= longest:
        out.append((lo, min(hi, longest)))
        lo, hi = hi + 1, hi * 4
    return out


def range_means(pts, least):
    """Target-weighted mean loss over each position range, of the positions scored at least
    `least` times (as the plot)."""
    last = max(p for p, _, _ in pts)
    means = {}
    for lo, hi in position_ranges(last):
        sel = [(c, l) for p, c, l in pts if lo <= p <= hi and c > 0 and c >= least]
        if sel:
            means[(lo, hi)] = sum(c * l for c, l in sel) / sum(c for c, _ in sel)
    return means


if __name__ == "__main__":
    main()
