#!/usr/bin/env python3
"""The early-token curse: mean loss at each position inside the window, from the CSV files of
`alibi eval --per-position` (length,position,count,mean_loss).

  python3 scripts/plot_positions.py LABEL=FILE.csv [LABEL=FILE.csv ...] --out positions.png

One line per (file, window length); x is the position inside the window (log scale), y the mean
loss in nats of the targets scored there. Needs matplotlib (Debian: python3-matplotlib); run by
a Python without it, it re-runs itself with /usr/bin/python3.
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
    sys.exit("plot_positions.py: matplotlib is missing; install python3-matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", help="LABEL=per-position.csv")
    ap.add_argument("--out", required=True, help="PNG to write")
    ap.add_argument("--title", default="mean loss at each position of the window")
    a = ap.parse_args()
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for spec in a.files:
        label, _, path = spec.rpartition("=")
        label = label or os.path.basename(path)
        curves = {}
        with open(path, newline="") as f:
            for r in csv.DictReader(f):
                curves.setdefault(int(r["length"]), []).append((int(r["position"]) + 1,
                                                                float(r["mean_loss"])))
        for length, pts in sorted(curves.items()):
            xs, ys = zip(*sorted(pts))
            ax.plot(xs, ys, linewidth=1, label=f"{label}, windows of {length}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("position inside the window (1 = first token)")
    ax.set_ylabel("mean loss (nats)")
    ax.set_title(a.title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(a.out, dpi=120)
    print(f"plot_positions.py: wrote {a.out}")


if __name__ == "__main__":
    main()
