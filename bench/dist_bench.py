#!/usr/bin/env python3
"""Data-parallel training under mpirun against one process, on this machine's cores.

    python3 bench/dist_bench.py [--alibi build/alibi] [--pairs 3] [--steps 60] [--work DIR]

Alternates, --pairs times, the same training (same model, same global batch, same steps):
  A: one process, 2 threads, --grad-accum 2;
  B: mpirun -np 2, 1 thread per rank, --grad-accum 1.
Reports tokens/s of each (steps after the first 10, from log.jsonl), the ratio B/A per pair and
its median, the share of B's step time in communication (comm_s in log.jsonl), the bytes each
rank sent per step against the scheme's volume in theory (the job report of `alibi train`), and
the peak RSS per rank for 1, 2 and 4 ranks (4 oversubscribed: memory only).
Both runs train bit-identically (tests/test_distributed.py), so the comparison is of speed only.
"""
import argparse
import json
import lzma
import os
import re
import statistics
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = ["--pos", "alibi", "--seq-len", "64", "--layers", "2", "--d-model", "128", "--heads", "8",
         "--ffn", "512", "--batch", "16", "--lr", "3e-3", "--warmup", "5", "--eval-every", "0",
         "--save-every", "0", "--log-every", "1000", "--eval-windows", "4"]
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_btl_vader_single_copy_mechanism="none")


def train(a, data, out, ranks, threads, accum):
    cmd = [a.alibi, "--threads", str(threads), "train", "--data", data, "--out", out, *MODEL,
           "--steps", str(a.steps), "--grad-accum", str(accum)]
    if ranks > 1:
        cmd = ["mpirun", "--oversubscribe", "--bind-to", "core" if ranks * threads <= os.cpu_count()
               else "none", "-np", str(ranks), *cmd, "--oversubscribe"]
    # A fresh interpreter reports its children's peak RSS: this run's alone.
    cmd = [sys.executable, "-c", "import resource, subprocess, sys; r = subprocess.run("
           "sys.argv[1:]); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
           "sys.exit(r.returncode)", *cmd]
    r = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stderr[-2000:]}")
    log = [json.loads(line) for line in open(os.path.join(out, "log.jsonl"))]
    k0 = 10
    t = log[-1]["elapsed_s"] - log[k0 - 1]["elapsed_s"]
    tokens = (len(log) - k0) * 16 * 64 * 2
    comm = sum(x.get("comm_s", 0.0) for x in log[k0:])
    ranks_report = re.findall(r"rank (\d+): peak RSS ([\d.]+) MB, communication [\d.]+ s, sent "
                              r"(\d+) bytes in the last step \(gradient parts \+ parameters in "
                              r"theory: (\d+)", r.stderr)
    return {"tok_s": tokens / t, "comm_share": comm / t, "ranks": ranks_report,
            "rss_one": float(r.stdout.split()[-1]) / 1024}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--alibi", default=os.path.join(REPO, "build", "alibi"))
    p.add_argument("--pairs", type=int, default=3)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--work", default=None)
    a = p.parse_args()
    work = a.work or tempfile.mkdtemp()
    os.makedirs(work, exist_ok=True)
    data = os.path.join(work, "data")
    if not os.path.isdir(data):
        text = os.path.join(work, "corpus.txt")
        with lzma.open(os.path.join(REPO, "data", "default-corpus.txt.xz"), "rt") as f:
            open(text, "w").write(f.read())
        subprocess.run([a.alibi, "prepare", "--input", text, "--out", data, "--tokenizer",
                        "bytes"], check=True, capture_output=True)
    ratios = []
    print("| pair | 1 rank x 2 threads tok/s | 2 ranks x 1 thread tok/s | ratio | comm share |")
    print("|---:|---:|---:|---:|---:|")
    last = None
    for i in range(a.pairs):
        one = train(a, data, os.path.join(work, f"one-{i}"), 1, 2, 2)
        two = train(a, data, os.path.join(work, f"two-{i}"), 2, 1, 1)
        ratios.append(two["tok_s"] / one["tok_s"])
        last = two
        print(f"| {i + 1} | {one['tok_s']:.0f} | {two['tok_s']:.0f} | {ratios[-1]:.3f} | "
              f"{100 * two['comm_share']:.1f}% |", flush=True)
    print(f"\nmedian ratio (2 ranks / 1 rank): {statistics.median(ratios):.3f}")
    for r, rss, sent, theory in last["ranks"]:
        print(f"rank {r}: sent {sent} bytes per step; reduce-scatter + all-gather in theory: "
              f"{theory}")
    print("\n| ranks | peak RSS per rank (MB) |\n|---:|---|")
    one = train(a, data, os.path.join(work, "mem-1"), 1, 1, 4)
    print(f"| 1 | {one['rss_one']:.1f} |")
    for n in (2, 4):
        run = train(a, data, os.path.join(work, f"mem-{n}"), n, 1, 4 // n)
        print(f"| {n} | {', '.join(rss for _, rss, _, _ in run['ranks'])} |", flush=True)


if __name__ == "__main__":
    main()
