#!/usr/bin/env python3
"""Context extension on the study's checkpoints (issue 29, part 3): the evaluation-time variants
and the fine-tuned recipe, on runs that scripts/experiment.py trained at L.

  python3 scripts/extension_study.py --runs DIR --data DATA --out DIR [--factors 2,4,16,32]
                                     [--finetune-steps 50] [--alibi build/alibi]

From DIR/alibi-L<L> and DIR/rotary-L<L> (experiment.py's run names; DIR/best.json, where there is
one, names them instead: a swept experiment's), each evaluated at every factor x L,
nonoverlapping, on the first --max-tokens tokens of the test split. A run recorded without its
weights (scripts/study_record.py) is retrained first and checked against its recorded loss.
  alibi+interpolate     --alibi-interpolate (slopes x L/L', Al-Khateeb et al. 2023)
  rotary+pi|ntk|yarn    --rope-scaling pi|ntk|yarn --rope-factor L'/L (each length its own s)
  ... fine-tuned at 4L  train --init-from the run at 4L for --finetune-steps steps (the same
                        tokens per step, a tenth of the run's learning rate): alibi as it is,
                        rotary with PI at s = 4 (Chen et al.'s recipe); then evaluated as it is
                        stored. Labelled "fine-tuned", rows of their own, never mixed with the
                        zero-shot rows
Writes OUT/results.csv in experiment.py's columns (method = the row's label) and OUT/results.md.
Finished evaluations and fine-tunes in OUT are reused.
"""
import argparse
import csv
import json
import os
import subprocess
import sys

COLUMNS = ["method", "run", "role", "train_len", "eval_len", "factor", "mode", "stride",
           "max_tokens", "tokens_scored", "loss", "ppl", "bits_per_token", "bits_per_byte",
           "tokens_per_s", "peak_rss_mb", "eval_seconds", "train_seconds", "status", "note"]


def run(cmd):
    print("[run] " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def evaluate(a, label, ckpt, L, factor, flags, out_rows):
    n = L * factor
    path = os.path.join(a.out, "evals", f"{label.replace(' ', '_')}-{n}.json")
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        run([a.alibi, "--threads", str(a.threads), "eval", ckpt, "--data", a.data, "--split",
             "test", "--lengths", str(n), "--mode", "nonoverlapping", "--max-tokens",
             str(a.max_tokens), "--json", path] + flags)
    with open(path) as f:
        r = json.load(f)["results"][0]
    out_rows.append({"method": label, "run": os.path.basename(ckpt), "role": "main",
                     "train_len": L, "eval_len": n, "factor": float(factor),
                     "mode": "nonoverlapping", "stride": n, "max_tokens": a.max_tokens,
                     "tokens_scored": r["tokens_scored"], "loss": r["loss"], "ppl": r["ppl"],
                     "bits_per_token": r["bits_per_token"], "bits_per_byte": r["bits_per_byte"],
                     "tokens_per_s": r["tokens_per_s"], "peak_rss_mb": r["peak_rss_mb"],
                     "eval_seconds": r["seconds"], "train_seconds": "", "status": "ok",
                     "note": " ".join(flags)})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--runs", required=True, help="experiment.py's runs folder")
    ap.add_argument("--data", required=True, help="prepared data folder")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--seq-len", type=int, default=128, help="the runs' training length L")
    ap.add_argument("--batch", type=int, default=16, help="the runs' batch at L")
    ap.add_argument("--factors", default="1,2,4,16,32", help="evaluation lengths / L")
    ap.add_argument("--max-tokens", type=int, default=65536, help="tokens of the test split")
    ap.add_argument("--finetune-steps", type=int, default=50, help="steps at 4L (0: none)")
    ap.add_argument("--lr", type=float, default=8e-3, help="the runs' learning rate")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--alibi", default=os.path.join(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))), "build", "alibi"))
    a = ap.parse_args()
    L = a.seq_len
    factors = [int(x) for x in a.factors.split(",")]
    rows = []
    best = os.path.join(os.path.dirname(os.path.normpath(a.runs)), "best.json")
    best = json.load(open(best)) if os.path.exists(best) else {}
    runs = {m: os.path.join(a.runs, os.path.basename(best[m]["run"]) if m in best else f"{m}-L{L}")
            for m in ("alibi", "rotary")}
    for m, r in runs.items():
        if not os.path.isdir(r):
            sys.exit(f"extension_study.py: {r} is missing; train it with scripts/experiment.py")
        if not any(f.startswith("ckpt-") for f in os.listdir(r)):
            run([sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                              "study_record.py"), "weights", r, "--alibi",
                 a.alibi, "--threads", str(a.threads), "--data", a.data])
    for f in factors:
        evaluate(a, "alibi+interpolate", runs["alibi"], L, f, ["--alibi-interpolate"], rows)
        for s in ("pi", "ntk", "yarn"):
            flags = ["--rope-scaling", s, "--rope-factor", str(f)] if f > 1 else []
            evaluate(a, f"rotary+{s}", runs["rotary"], L, f, flags, rows)
    if a.finetune_steps > 0:
        recipes = {"alibi": ("alibi", []),
                   "rotary": ("rotary+pi", ["--rope-scaling", "pi", "--rope-factor", "4"])}
        for m, r in runs.items():
            label, flags = recipes[m]
            ft = os.path.join(a.out, "runs", f"{m}-L{L}-ft{4 * L}")
            if not os.path.exists(os.path.join(ft, "done")):
                run([a.alibi, "--threads", str(a.threads), "train", "--data", a.data, "--out",
                     ft, "--init-from", r, "--seq-len", str(4 * L), "--batch",
                     str(max(1, a.batch // 4)), "--steps", str(a.finetune_steps), "--lr",
                     str(a.lr / 10), "--warmup", str(max(1, a.finetune_steps // 10)),
                     "--dropout", "0.0", "--seed", "1337", "--eval-every", "0", "--keep", "1"]
                    + flags)
                open(os.path.join(ft, "done"), "w").close()
            for f in factors:
                if f >= 4:
                    evaluate(a, f"{label} (fine-tuned at {4 * L})", ft, L, f, [], rows)
    with open(os.path.join(a.out, "results.csv"), "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
    labels = list(dict.fromkeys(r["method"] for r in rows))
    with open(os.path.join(a.out, "results.md"), "w") as fh:
        fh.write("| variant | " + " | ".join(f"{L * f} ({f}x)" for f in factors) + " |\n")
        fh.write("|---|" + "---:|" * len(factors) + "\n")
        for lab in labels:
            by = {r["factor"]: r["ppl"] for r in rows if r["method"] == lab}
            cells = [f"{by[float(f)]:.3g}" if float(f) in by else "-" for f in factors]
            fh.write(f"| {lab} | " + " | ".join(cells) + " |\n")
    print(open(os.path.join(a.out, "results.md")).read())


if __name__ == "__main__":
    main()
