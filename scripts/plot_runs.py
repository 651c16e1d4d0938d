#!/usr/bin/env python3
"""Training curves of runs, from their log.jsonl: train loss (lines) and validation loss
(markers) against step, one panel per group of runs, and under each the difference of every run
from the group's first.

  python3 scripts/plot_runs.py --out curves.png RUN_A RUN_B [--group RUN_C RUN_D ...]
                               [--label NAME ...] [--title T]

RUN is a run folder (or its log.jsonl). Labels go to the runs in order (default: the folder
names). Needs matplotlib (Debian: python3-matplotlib); run by a Python without it, it re-runs
itself with /usr/bin/python3.
"""
import argparse
import json
import os
import sys

try:
    import matplotlib
except ImportError:
    if os.path.exists("/usr/bin/python3") and os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    sys.exit("plot_runs.py: matplotlib is missing; install python3-matplotlib (bash scripts/setup.sh)")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def load(run):
    path = os.path.join(run, "log.jsonl") if os.path.isdir(run) else run
    try:
        with open(path) as f:
            rows = [json.loads(line) for line in f if line.strip()]
    except OSError as e:
        sys.exit(f"plot_runs.py: cannot read '{path}': {e.strerror}; expected a run folder or its log.jsonl")
    train = {r["step"]: r["loss"] for r in rows if "loss" in r}
    val = {r["step"]: r["val_loss"] for r in rows if "val_loss" in r}
    if not train:
        sys.exit(f"plot_runs.py: '{path}' has no training steps")
    return train, val


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="run folders or log.jsonl files of the first group")
    ap.add_argument("--group", nargs="+", action="append", default=[], help="another group")
    ap.add_argument("--label", nargs="+", default=[], help="labels, one per run in order")
    ap.add_argument("--title", nargs="+", default=[], help="a title per group")
    ap.add_argument("--out", required=True, help="PNG to write")
    a = ap.parse_args()
    groups = [a.runs] + a.group
    labels = iter(a.label)
    fig, axes = plt.subplots(2, len(groups), figsize=(6 * len(groups), 6.5), squeeze=False,
                             gridspec_kw={"height_ratios": [3, 1.4]}, sharex="col")
    for g, runs in enumerate(groups):
        top, bottom = axes[0][g], axes[1][g]
        base_train, base_val, base_label = None, None, None
        for i, run in enumerate(runs):
            label = next(labels, os.path.basename(os.path.normpath(run)))
            train, val = load(run)
            steps = sorted(train)
            line, = top.plot(steps, [train[s] for s in steps], lw=1, label=f"{label} train")
            vs = sorted(val)
            top.plot(vs, [val[s] for s in vs], "o", color=line.get_color(), ms=5, label=f"{label} valid")
            if i == 0:
                base_train, base_val, base_label = train, val, label
                continue
            common = [s for s in steps if s in base_train]
            bottom.plot(common, [train[s] - base_train[s] for s in common], lw=1, color=line.get_color(),
                        label=f"{label} - {base_label}, train")
            cv = [s for s in vs if s in base_val]
            bottom.plot(cv, [val[s] - base_val[s] for s in cv], "o", ms=5, color=line.get_color(),
                        label=f"{label} - {base_label}, valid")
        top.set_ylabel("loss (nats/token)")
        top.grid(alpha=0.3)
        top.legend(fontsize=8)
        if g < len(a.title):
            top.set_title(a.title[g])
        bottom.axhline(0, color="black", lw=0.5)
        bottom.set_xlabel("step")
        bottom.set_ylabel("difference")
        bottom.grid(alpha=0.3)
        bottom.legend(fontsize=8)
    fig.tight_layout()
    tmp = a.out + ".tmp.png"
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, a.out)
    print(a.out)


if __name__ == "__main__":
    main()
