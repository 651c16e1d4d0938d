#!/usr/bin/env python3
"""Training time per step of several configurations, one process at a time, in alternation.

    python3 bench/train_time.py --data DIR --configs alibi:64:32,sinusoidal:128:16 \
        [--steps 120] [--rounds 3] [--threads 1] [--full-steps 1500] [--alibi build/alibi]

Each config is POS:SEQ_LEN:BATCH[:FLAG=VALUE...] with the model of docs/results.md (override
with --model); FLAG=VALUE adds `--FLAG VALUE` to that config's training, e.g.
alibi:64:32,alibi:64:32:slopes=trainable times fixed against trainable slopes.
Every round trains each config once for --steps steps into a scratch folder (no checkpoints, no
validation), in the same order, so a load that comes and goes hits every config alike. A step's
time is read from the trainer's log.jsonl (elapsed_s of consecutive steps); the first tenth of
the steps (start-up, caches) is left out and the median of the rest is the step time of that
round. The table gives, per config, each round's median, the median over rounds, tokens per
second, the ratio to the first config and the projected time of --full-steps steps. Run it on a
quiet machine: it measures wall time.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = "--layers 2 --d-model 128 --heads 8 --ffn 512"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", required=True, help="prepared data folder (alibi prepare)")
    p.add_argument("--configs", required=True,
                   help="POS:SEQ_LEN:BATCH[:FLAG=VALUE...], comma-separated")
    p.add_argument("--steps", type=int, default=120, help="steps per timed run")
    p.add_argument("--rounds", type=int, default=3, help="runs of each config, alternating")
    p.add_argument("--threads", type=int, default=1, help="alibi --threads")
    p.add_argument("--full-steps", type=int, default=1500, help="steps of the projected run")
    p.add_argument("--model", default=MODEL, help="model flags of alibi train")
    p.add_argument("--alibi", default=os.path.join(REPO, "build", "alibi"), help="the alibi binary")
    a = p.parse_args()
    a.configs = [c.split(":") for c in a.configs.split(",") if c]
    for c in a.configs:
        if (len(c) < 3 or not c[1].isdigit() or not c[2].isdigit()
                or any("=" not in f for f in c[3:])):
            p.error(f"--configs: '{':'.join(c)}' is not POS:SEQ_LEN:BATCH[:FLAG=VALUE...]")
    if a.steps < 20:
        p.error(f"--steps {a.steps}: expected at least 20")
    if not os.path.exists(a.alibi):
        p.error(f"--alibi '{a.alibi}' does not exist; build it first (bash scripts/setup.sh)")
    return a


def extra_flags(c):
    return [x for f in c[3:] for x in ("--" + f.split("=", 1)[0], f.split("=", 1)[1])]


def label(c):
    return f"{c[0]}, L = {c[1]}, batch {c[2]}" + "".join(f", {f}" for f in c[3:])


def step_seconds(a, c, scratch):
    pos, seq_len, batch = c[:3]
    out = os.path.join(scratch, "run")
    shutil.rmtree(out, ignore_errors=True)
    cmd = [a.alibi, "--threads", str(a.threads), "train", "--data", a.data, "--out", out,
           "--pos", pos, "--seq-len", seq_len, "--batch", batch, "--steps", str(a.steps),
           "--warmup", "1", "--eval-every", "0", "--save-every", "0", "--log-every",
           str(a.steps), "--seed", "1337", *a.model.split(), *extra_flags(c)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"train_time: {' '.join(cmd)} failed:\n{r.stdout}{r.stderr}")
    elapsed = {j["step"]: j["elapsed_s"] for j in map(json.loads, open(os.path.join(out, "log.jsonl")))
               if "elapsed_s" in j}
    skip = max(2, a.steps // 10)
    return statistics.median(elapsed[s] - elapsed[s - 1] for s in range(skip + 1, a.steps + 1))


def main():
    a = parse_args()
    times = {i: [] for i in range(len(a.configs))}
    with tempfile.TemporaryDirectory() as scratch:
        for r in range(a.rounds):
            for i, c in enumerate(a.configs):
                times[i].append(step_seconds(a, c, scratch))
                print(f"round {r + 1}: {label(c)}: {times[i][-1] * 1e3:.1f} ms/step",
                      file=sys.stderr)
    base = statistics.median(times[0])
    print("| config | ms per step (each round) | median | tokens/s | ratio to first | "
          f"{a.full_steps} steps |")
    print("|---|---|---:|---:|---:|---:|")
    for i, c in enumerate(a.configs):
        T, B = c[1], c[2]
        med = statistics.median(times[i])
        rounds = " / ".join(f"{t * 1e3:.1f}" for t in times[i])
        print(f"| {label(c)} | {rounds} | {med * 1e3:.1f} | "
              f"{int(T) * int(B) / med:,.0f} | {med / base:.3f} | {med * a.full_steps:.0f} s |")


if __name__ == "__main__":
    main()
