#!/usr/bin/env python3
"""Train short, test long (Press et al., ICLR 2022, Figure 1), with the alibi CLI.

Trains each position method at one --seq-len on the same prepared data, with the same token
budget, seed and model size; evaluates each at --factors times the training length; and writes
into --out:

  results.csv   one row per (method, mode, evaluation length): ppl, bits, speed, memory, status
  sweep.csv     with --lrs or --t5-lr-scales: one row per training setting, its ppl at L
  best.json     the run (and setting) of each method that the tables report
  results.md    the perplexity tables and the paper's second comparison
  plot.png      perplexity against evaluation length, log x (scripts/plot.py, matplotlib)
  runs/NAME/    the run folders (checkpoints, log.jsonl, train.log, timing.json)
  evals/*.json  the output of every `alibi eval --json`

The paper's second comparison: ALiBi trained at L and evaluated at 2L against sinusoidal
trained at 2L and evaluated at 2L, with the same tokens per step (half the batch) and steps,
and the training time of each (--no-compare leaves it out).

Tuning (--lrs, --t5-lr-scales): every method is trained at L with each learning rate (t5 also
with each table scale) on the same budget, and scored at L only, on --sweep-split (nonoverlapping,
first --sweep-max-tokens); each method's best setting is the run the study evaluates at every
length (on --split: use another split than the sweep's). Nothing past L takes part in the choice.
A best rate at the edge of the grid is not an optimum: that method also tries twice (or half)
the rate, until its best lies inside what it tried (at most --bracket more runs per method).
The sweep is a table in results.md and sweep.csv; sinusoidal at 2L is tuned the same way at its
own length 2L.

Finished runs and evaluations are reused, so an interrupted experiment continues where it
stopped. Uses only the Python standard library; the plot needs matplotlib (Debian:
python3-matplotlib), found in whichever python3 has it.

Example (the README's quickstart does this on the bundled corpus):
  build/alibi prepare --input corpus.txt --out data --tokenizer bytes
  python3 scripts/experiment.py --data data --out out/exp --methods alibi,sinusoidal --seq-len 64
"""
import argparse
import concurrent.futures
import csv
import fcntl
import json
import math
import os
import re
import subprocess
import sys
import threading
import time

from study_record import final_loss

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAPER_METHODS = ["alibi", "sinusoidal", "rotary", "t5", "learned", "none"]  # the default


def registry_methods(alibi: str) -> list[str]:
    """Every position method the binary has: its registry, as `train --help` lists --pos."""
    out = subprocess.run([alibi, "train", "--help"], capture_output=True, text=True).stdout
    m = re.search(r"--pos ([a-z0-9|-]+)=", out)
    if not m:
        sys.exit(f"experiment.py: '{alibi} train --help' lists no --pos choices; build alibi first")
    return m.group(1).split("|")
CSV_FIELDS = ["method", "run", "role", "train_len", "eval_len", "factor", "mode", "stride", "max_tokens",
              "tokens_scored", "loss", "ppl", "bits_per_token", "bits_per_byte", "tokens_per_s",
              "peak_rss_mb", "eval_seconds", "train_seconds", "status", "note"]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", required=True, help="prepared data folder (alibi prepare)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--alibi", default=os.path.join(REPO, "build", "alibi"), help="the alibi binary")
    p.add_argument("--methods", default=",".join(PAPER_METHODS), help="position methods to train")
    p.add_argument("--seq-len", type=int, default=64, help="training length L")
    p.add_argument("--factors", default="1,2,4,8,16,32", help="evaluation lengths, as multiples of L")
    p.add_argument("--modes", default="nonoverlapping", help="nonoverlapping and/or sliding")
    p.add_argument("--stride", type=int, default=0, help="sliding stride (0: L, as the paper's S = L = 512)")
    p.add_argument("--split", default="valid", help="split to evaluate on")
    p.add_argument("--max-tokens", type=int, default=0,
                   help="nonoverlapping: score the first N tokens of the split (0: all)")
    p.add_argument("--sliding-max-tokens", type=int, default=0,
                   help="sliding: score the first N tokens of the split (0: as --max-tokens)")
    p.add_argument("--no-compare", action="store_true",
                   help="skip the second comparison (sinusoidal trained at 2L)")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--ffn", type=int, default=512)
    p.add_argument("--batch", type=int, default=32, help="windows per step at L (tokens/step = batch*L)")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--lr", type=float, default=2e-3, help="learning rate (without --lrs)")
    p.add_argument("--lrs", default="", help="learning rates to sweep, comma-separated (see above)")
    p.add_argument("--t5-lr-scales", default="1", help="t5 table learning-rate scales to sweep")
    p.add_argument("--bracket", type=int, default=2,
                   help="with --lrs: while a method's best rate is the largest (smallest) it "
                        "tried, also try twice (half) that rate, at most this many times")
    p.add_argument("--lrs-from", default="",
                   help="best.json of another experiment: each method trains once with the "
                        "setting tuned there (no sweep here)")
    p.add_argument("--sweep-split", default="valid", help="split the sweep is scored on")
    p.add_argument("--sweep-max-tokens", type=int, default=0,
                   help="sweep: score the first N tokens at L (0: as --max-tokens)")
    p.add_argument("--init", default="", choices=["", "fairseq", "gpt2"],
                   help="alibi train --init (empty: the binary's default)")
    p.add_argument("--warmup", type=int, default=30)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--jobs", type=int, default=1, help="trainings / evaluations run at once")
    p.add_argument("--threads", type=int, default=0, help="threads per alibi process (0: all cores)")
    p.add_argument("--title", default="", help="plot title")
    p.add_argument("--no-plot", action="store_true", help="write no plot.png")
    a = p.parse_args()
    a.methods = [m for m in a.methods.split(",") if m]
    known = registry_methods(a.alibi)
    for m in a.methods:
        if m not in known:
            p.error(f"--methods: unknown method '{m}'; expected some of {','.join(known)}")
    def positive_list(flag, text):
        try:
            vals = [float(x) for x in text.split(",") if x]
        except ValueError:
            vals = [-1.0]
        if any(not (v > 0 and math.isfinite(v)) for v in vals):
            p.error(f"{flag} '{text}': expected positive numbers, comma-separated")
        return vals
    a.lrs = positive_list("--lrs", a.lrs) or [a.lr]
    a.t5_lr_scales = positive_list("--t5-lr-scales", a.t5_lr_scales) or [1.0]
    a.tuned = {}
    if a.lrs_from:
        try:
            a.tuned = json.load(open(a.lrs_from))
        except (OSError, ValueError) as e:
            p.error(f"--lrs-from '{a.lrs_from}': cannot read a best.json ({e})")
        for m in a.methods + ([] if a.no_compare else ["sinusoidal at 2L"]):
            if m not in a.tuned and not (m == "sinusoidal at 2L" and "sinusoidal" in a.tuned):
                p.error(f"--lrs-from '{a.lrs_from}': no tuned setting for '{m}'")
    if a.sweep_max_tokens == 0:
        a.sweep_max_tokens = a.max_tokens
    a.factors = [int(f) for f in a.factors.split(",") if f]
    a.modes = [m for m in a.modes.split(",") if m]
    for m in a.modes:
        if m not in ("nonoverlapping", "sliding"):
            p.error(f"--modes: unknown mode '{m}'; expected nonoverlapping and/or sliding")
    if a.stride == 0:
        a.stride = a.seq_len
    if a.sliding_max_tokens == 0:
        a.sliding_max_tokens = a.max_tokens
    longest = max(a.factors) * a.seq_len
    for flag, n in (("--max-tokens", a.max_tokens), ("--sliding-max-tokens", a.sliding_max_tokens)):
        if n and n <= longest:
            p.error(f"{flag} {n} leaves no room for the longest window, {max(a.factors)} x "
                    f"{a.seq_len} = {longest} tokens; use more than {longest}")
    if a.bracket < 0:
        p.error(f"--bracket {a.bracket}: expected 0 or more")
    if not a.no_compare and a.batch % 2:
        p.error(f"--batch {a.batch} must be even for the comparison (sinusoidal at 2L uses batch/2)")
    if not os.path.exists(a.alibi):
        p.error(f"--alibi '{a.alibi}' does not exist; build it first (bash scripts/setup.sh)")
    return a


def log(msg):
    print(msg, flush=True)


def alibi_cmd(a, *args):
    cmd = [a.alibi]
    if a.threads > 0:
        cmd += ["--threads", str(a.threads)]
    return cmd + [str(x) for x in args]


def latest_step(run_dir):
    steps = [int(m.group(1)) for f in (os.listdir(run_dir) if os.path.isdir(run_dir) else [])
             if (m := re.fullmatch(r"ckpt-(\d+)\.safetensors", f))]
    return max(steps, default=-1)


def suffix(a, lr, scale):
    """The run-name suffix of a training setting (empty where nothing is swept)."""
    return (f"-lr{lr:g}" if len(a.lrs) > 1 else "") + \
           (f"-t5x{scale:g}" if scale is not None and len(a.t5_lr_scales) > 1 else "")


def settings(a, method):
    """The training settings a method is first tried with: (run-name suffix, extra flags, lr)."""
    if a.tuned:  # --lrs-from: the one setting tuned elsewhere
        t = a.tuned.get(method) or a.tuned[method.split(" ")[0]]
        return [("", t["extra"], t["lr"])]
    out = []
    for lr in a.lrs:
        for s in (a.t5_lr_scales if method == "t5" else [None]):
            extra = ["--t5-lr-scale", s] if s is not None and s != 1.0 else []
            out.append((suffix(a, lr, s), extra, lr))
    return out


def run_key(cmd):
    """What makes two training commands the same run: all but the binary, the folder, the
    checkpoint cadence (which does not change the result: resuming is bit-identical) and where
    the data folder is (its name stays: a study restored elsewhere keeps its runs)."""
    key = [str(x) for x in cmd[cmd.index("train") + 1:]]
    for flag in ("--out", "--save-every"):
        if flag in key:
            i = key.index(flag)
            del key[i:i + 2]
    if "--data" in key:
        i = key.index("--data") + 1
        key[i] = os.path.basename(os.path.normpath(key[i]))
    return key


def train(a, name, pos, seq_len, batch, lr, extra):
    """Trains one run (or reuses a finished one); returns its training wall time in seconds."""
    run = os.path.join(a.out, "runs", name)
    timing = os.path.join(run, "timing.json")
    cmd = alibi_cmd(a, "train", "--data", a.data, "--out", run, "--pos", pos,
                    "--seq-len", seq_len, "--layers", a.layers, "--d-model", a.d_model,
                    "--heads", a.heads, "--ffn", a.ffn, "--batch", batch, "--steps", a.steps,
                    "--lr", lr, "--warmup", a.warmup, "--dropout", a.dropout, "--seed", a.seed,
                    "--eval-every", 0, "--save-every", max(1, a.steps // 6),
                    "--log-every", max(1, a.steps // 10), "--keep", 1, *extra,
                    *(["--init", a.init] if a.init else []))
    key, stored = run_key(cmd), cmd[cmd.index("train"):]
    if os.path.exists(timing):
        t = json.load(open(timing))
        if run_key(t.get("command", [])) == key and latest_step(run) in (a.steps, -1):
            kept = "" if latest_step(run) == a.steps else "; recorded, its weights are retrained if needed"
            log(f"[train] {name}: reusing the finished run ({t['train_seconds']:.0f} s{kept})")
            return t["train_seconds"]
        sys.exit(f"experiment: run folder '{run}' holds another run; remove it or use another --out")
    if latest_step(run) >= 0:  # an interrupted run: continue it bit-identically
        cmd = alibi_cmd(a, "train", "--resume", run, "--steps", a.steps, "--log-every",
                        max(1, a.steps // 10))
    os.makedirs(run, exist_ok=True)
    log(f"[train] {name}: {' '.join(cmd)}")
    t0 = time.monotonic()
    with open(os.path.join(run, "train.log"), "a") as f:
        r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    seconds = time.monotonic() - t0
    if r.returncode != 0:
        sys.exit(f"experiment: training {name} failed (exit {r.returncode}); see {run}/train.log")
    # A resumed run counts only the time of this process. The final loss lets a run recorded
    # without its weights (scripts/study_record.py) be retrained and checked.
    json.dump({"command": stored, "train_seconds": seconds, "tokens": a.steps * batch * seq_len,
               "final_loss": final_loss(run)}, open(timing, "w"))
    log(f"[train] {name}: done in {seconds:.0f} s")
    return seconds


RETRAIN_LOCKS = {}
RETRAIN_FAILED = {}  # run -> why its retraining was refused: evaluations waiting on it stop too


def restore_weights(a, run):
    """A run recorded without its checkpoint (scripts/study_record.py): retrain it from its
    recorded command and check that it ends at the recorded loss (training is deterministic
    for a given thread count), so the evaluations come from the recorded run's weights."""
    # One retraining per run: threads of this process wait on a lock, other processes (another
    # script on the same study) on a file lock beside the run; whoever comes second finds the
    # weights there.
    with RETRAIN_LOCKS.setdefault(run, threading.Lock()), \
            open(os.path.normpath(run) + ".retrain.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if run in RETRAIN_FAILED:
            sys.exit(RETRAIN_FAILED[run])
        t = json.load(open(os.path.join(run, "timing.json")))
        steps = int(t["command"][t["command"].index("--steps") + 1])
        if latest_step(run) == steps:
            return
        tmp = run + ".retrain"
        if os.path.isdir(tmp):
            for f in os.listdir(tmp):
                os.remove(os.path.join(tmp, f))
        stored = list(t["command"])
        stored[stored.index("--out") + 1] = tmp
        if a.data:  # the same data, wherever it is now
            stored[stored.index("--data") + 1] = a.data
        log(f"[train] {os.path.basename(run)}: retraining the recorded run for its weights")
        with open(os.path.join(run, "train.log"), "a") as f:
            r = subprocess.run(alibi_cmd(a, *stored), stdout=f, stderr=subprocess.STDOUT)
        if r.returncode != 0:
            sys.exit(f"experiment: retraining {run} failed (exit {r.returncode}); see {run}/train.log")
        if t.get("final_loss") is not None and final_loss(tmp) != t["final_loss"]:
            RETRAIN_FAILED[run] = (
                f"experiment: retraining {run} ended at loss {final_loss(tmp)}, not the recorded "
                f"{t['final_loss']}; was it recorded with another --threads or binary?")
            sys.exit(RETRAIN_FAILED[run])
        for f in os.listdir(tmp):
            os.replace(os.path.join(tmp, f), os.path.join(run, f))
        os.rmdir(tmp)


def evaluate(a, run_name, eval_len, mode, split=None, max_tokens=None):
    """One `alibi eval` call; returns the CSV fields it determines."""
    run = os.path.join(a.out, "runs", run_name)
    split = split or a.split
    if max_tokens is None:
        max_tokens = a.max_tokens if mode == "nonoverlapping" else a.sliding_max_tokens
    tag = "" if split == "valid" else f"-{split}"  # valid keeps the names of earlier studies
    out = os.path.join(a.out, "evals", f"{run_name}-{mode}-{eval_len}-n{max_tokens}{tag}.json")
    row = {"eval_len": eval_len, "mode": mode, "max_tokens": max_tokens,
           "stride": min(a.stride, eval_len) if mode == "sliding" else eval_len}
    # Sliding with stride >= length is the nonoverlapping split (the CLI refuses that stride).
    cli_mode = "sliding" if mode == "sliding" and a.stride < eval_len else "nonoverlapping"
    if not os.path.exists(out):
        if latest_step(run) < 0:
            restore_weights(a, run)
        cmd = alibi_cmd(a, "eval", run, "--data", a.data, "--split", split, "--lengths", eval_len,
                        "--mode", cli_mode, "--max-tokens", max_tokens, "--json", out + ".tmp")
        if cli_mode == "sliding":
            cmd += ["--stride", str(a.stride)]
        r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if r.returncode == 2 and "--pos learned" in r.stderr and "past" in r.stderr:  # its table
            json.dump({"refused": r.stderr.strip()}, open(out, "w"))
        elif r.returncode != 0:
            sys.exit(f"experiment: {' '.join(cmd)} failed (exit {r.returncode}): {r.stderr.strip()}")
        else:
            os.replace(out + ".tmp", out)
    j = json.load(open(out))
    if "refused" in j:
        msg = j["refused"].removeprefix("alibi: error: ")
        log(f"[eval]  {run_name} {mode} {eval_len}: refused: {msg}")
        return dict(row, status="refused", note=msg)
    res = j["results"][0]
    log(f"[eval]  {run_name} {mode} {eval_len}: ppl {res['ppl']:.2f}")
    return dict(row, status="ok", note="", tokens_scored=res["tokens_scored"], loss=res["loss"],
                ppl=res["ppl"], bits_per_token=res["bits_per_token"],
                bits_per_byte=res["bits_per_byte"], tokens_per_s=res["tokens_per_s"],
                peak_rss_mb=res["peak_rss_mb"], eval_seconds=res["seconds"])


def fmt_s(seconds):
    return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"


def fmt_ppl(row):
    if row is None:
        return ""
    if row["status"] != "ok":
        return "refused"
    p = row["ppl"]  # two decimals where byte-level perplexities differ in them
    return f"{p:.2f}" if p < 10 else f"{p:.1f}" if p < 1e4 else f"{p:.3g}"


def markdown(a, rows, compare_rows, train_seconds, sweep_rows, best):
    L = a.seq_len
    lines = []
    if sweep_rows:
        scope = (f"the first {a.sweep_max_tokens:,} tokens of {a.sweep_split}"
                 if a.sweep_max_tokens else f"all of {a.sweep_split}")
        lines.append(f"Tuning at L = {L}: perplexity at {L} (nonoverlapping, {scope}) of each training "
                     f"setting (sinusoidal at 2L: at {2 * L}, its own length); the best per "
                     f"method (bold) is the run evaluated below:\n")
        lrs = sorted({r["lr"] for r in sweep_rows})
        lines += ["| method | " + " | ".join(f"lr {lr:g}" for lr in lrs) + " |",
                  "|" + "---|" * (len(lrs) + 1)]
        swept_cmp = any(r["method"] == "sinusoidal at 2L" for r in sweep_rows)
        for m in a.methods + (["sinusoidal at 2L"] if swept_cmp else []):
            for scale in (a.t5_lr_scales if m == "t5" and len(a.t5_lr_scales) > 1 else [None]):
                cells = []
                for lr in lrs:
                    r = next((r for r in sweep_rows if r["method"] == m and r["lr"] == lr and
                              (scale is None or r["t5_lr_scale"] == scale)), None)
                    cell = fmt_ppl(r) if r else ""
                    cells.append(f"**{cell}**" if r and r["run"] == best[m][0] else cell)
                name = m if scale is None else f"{m} (table lr x{scale:g})"
                lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    if a.tuned:
        lines.append(f"Settings tuned in {a.lrs_from}: " + "; ".join(
            f"{m} lr {t['lr']:g}" + (f" ({' '.join(t['extra'])})" if t["extra"] else "")
            for m, t in a.tuned.items() if m in a.methods or m == "sinusoidal at 2L") + ".\n")
    for mode in a.modes:
        mt = a.max_tokens if mode == "nonoverlapping" else a.sliding_max_tokens
        desc = "nonoverlapping windows" if mode == "nonoverlapping" else f"sliding windows, stride {a.stride}"
        scope = f"the first {mt:,} tokens of {a.split}" if mt else f"all of {a.split}"
        lines.append(f"Perplexity, trained at L = {L}, {desc}, on {scope}:\n")
        head = "| method | " + " | ".join(f"{f * L} ({f}x)" for f in a.factors) + " | train time |"
        lines += [head, "|" + "---|" * (len(a.factors) + 2)]
        for m in a.methods:
            cells = [fmt_ppl(next((r for r in rows if r["method"] == m and r["mode"] == mode
                                   and r["eval_len"] == f * L and r["role"] == "main"), None))
                     for f in a.factors]
            lines.append(f"| {m} | " + " | ".join(cells) +
                         f" | {fmt_s(train_seconds[best[m][0]])} |")
        lines.append("")
    if compare_rows:
        lines.append(f"The paper's second comparison: ALiBi trained at L = {L} against sinusoidal "
                     f"trained at 2L = {2 * L}, both evaluated at {2 * L} (same steps and tokens "
                     f"per step):\n")
        lines += ["| model | trained at | evaluated at | mode | ppl | training time |",
                  "|---|---|---|---|---|---|"]
        for r in compare_rows:
            lines.append(f"| {r['method']} | {r['train_len']} | {r['eval_len']} | {r['mode']} | "
                         f"{fmt_ppl(r)} | {fmt_s(r['train_seconds'])} |")
        lines.append("")
    return "\n".join(lines)


def plot_python():
    """A Python that can import matplotlib: this one, Debian's, or the first python3 on PATH."""
    for cand in [sys.executable, "/usr/bin/python3", "python3"]:
        try:
            if subprocess.run([cand, "-c", "import matplotlib"], stderr=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL).returncode == 0:
                return cand
        except OSError:
            continue
    return None


def write_best(a, best):
    """best.json: the run and setting of each method (and of sinusoidal at 2L once trained)."""
    with open(os.path.join(a.out, "best.json"), "w") as f:
        json.dump({m: {"run": os.path.join(a.out, "runs", run), "lr": lr,
                       "extra": [str(x) for x in extra]} for m, (run, lr, extra) in best.items()},
                  f, indent=1)


def pool(a, fn, items):
    """fn over items on a.jobs threads; the first failure cancels the items not yet started."""
    with concurrent.futures.ThreadPoolExecutor(max(1, a.jobs)) as ex:
        futures = [ex.submit(fn, x) for x in items]
        try:
            return [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            raise


def main():
    a = parse_args()
    os.makedirs(os.path.join(a.out, "evals"), exist_ok=True)
    t_start = time.monotonic()
    L = a.seq_len
    # What is tuned: every method at L and, for the second comparison, sinusoidal at 2L (half
    # the batch, scored at its own length). Job: (label, pos, run, seq_len, batch, lr, extra).
    labels = [(m, m, L, a.batch) for m in a.methods]
    if not a.no_compare:
        labels.append(("sinusoidal at 2L", "sinusoidal", 2 * L, a.batch // 2))
    pending = [(lab, pos, f"{pos}-L{T}{sfx}", T, B, lr, extra)
               for lab, pos, T, B in labels for sfx, extra, lr in settings(a, lab)]
    sweeping = len(pending) > len(labels)
    jobs, train_seconds, sweep_rows, extended = [], {}, [], {lab[0]: 0 for lab in labels}
    best = {}
    def train_and_score(j):
        """Trains one setting and, in a sweep, scores it at its training length at once, so
        that a study's record (scripts/study_record.py) holds the score of every finished run."""
        seconds = train(a, j[2], j[1], j[3], j[4], j[5], j[6])
        score = evaluate(a, j[2], j[3], "nonoverlapping", a.sweep_split,
                         a.sweep_max_tokens) if sweeping else None
        return seconds, score

    while pending:
        done = pool(a, train_and_score, pending)
        train_seconds.update({j[2]: d[0] for j, d in zip(pending, done)})
        jobs += pending
        if not sweeping:
            break
        # The sweep: each setting scored at its training length only.
        for j, (_, e) in zip(pending, done):
            scale = float(j[6][1]) if j[6] else (1.0 if j[1] == "t5" else "")
            setting = f"lr {j[5]:g}" + (f", t5 table x{scale:g}" if j[1] == "t5" else "")
            sweep_rows.append(dict(e, method=j[0], run=j[2], lr=j[5], t5_lr_scale=scale,
                                   setting=setting, train_seconds=round(train_seconds[j[2]], 1)))
        # Bracketing: a best rate at the edge of what its method tried is not an optimum, so
        # the method also tries twice (or half) that rate, up to --bracket times.
        pending = []
        for lab, pos, T, B in labels:
            rows = [r for r in sweep_rows if r["method"] == lab and r["status"] == "ok"]
            r = min(rows, key=lambda r: r["ppl"])
            tried = [q["lr"] for q in rows if q["t5_lr_scale"] == r["t5_lr_scale"]]
            lr = (r["lr"] * 2 if r["lr"] == max(tried) else
                  r["lr"] / 2 if r["lr"] == min(tried) else None)
            if lr is None or extended[lab] == a.bracket or len(tried) < 2:
                continue
            extended[lab] += 1
            extra = next(j[6] for j in jobs if j[2] == r["run"])
            sc = r["t5_lr_scale"] if pos == "t5" else None
            pending.append((lab, pos, f"{pos}-L{T}{suffix(a, lr, sc)}", T, B, lr, extra))
            log(f"[sweep] {lab}: best {r['setting']} is at the edge of its grid; trying lr {lr:g}")
    for lab, *_ in labels:
        cand = [j for j in jobs if j[0] == lab]
        if sweeping:
            r = min((r for r in sweep_rows if r["method"] == lab and r["status"] == "ok"),
                    key=lambda r: r["ppl"])
            cand = [j for j in cand if j[2] == r["run"]]
            edge = " (still at the edge of its grid)" if r["lr"] in (
                max(q["lr"] for q in sweep_rows if q["method"] == lab),
                min(q["lr"] for q in sweep_rows if q["method"] == lab)) else ""
            log(f"[sweep] {lab}: best {r['setting']} (ppl {r['ppl']:.2f} at its length "
                f"on {a.sweep_split}){edge}")
        best[lab] = (cand[0][2], cand[0][5], cand[0][6])
    # The run of each method the study evaluates (for scripts that read the runs afterwards).
    write_best(a, best)
    cmp_run = best.get("sinusoidal at 2L", (None,))[0]
    if sweep_rows:
        with open(os.path.join(a.out, "sweep.csv"), "w", newline="") as f:
            fields = ["method", "run", "lr", "t5_lr_scale", "eval_len", "mode", "max_tokens",
                      "tokens_scored", "loss", "ppl", "train_seconds", "status"]
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            for r in sweep_rows:
                w.writerow({k: r.get(k, "") for k in fields})

    tasks = []  # (method, run, train_len, eval_len, mode)
    for m in a.methods:
        for mode in a.modes:
            for f in a.factors:
                tasks.append((m, best[m][0], L, f * L, mode))
    if cmp_run:
        for mode in a.modes:
            tasks.append(("sinusoidal", cmp_run, 2 * L, 2 * L, mode))
    evals = pool(a, lambda t: evaluate(a, t[1], t[3], t[4]), tasks)
    rows = []
    for (m, run, tl, el, mode), e in zip(tasks, evals):
        rows.append(dict(e, method=m, run=run, train_len=tl, factor=el / tl,
                         role="main" if tl == L else "compare",
                         train_seconds=round(train_seconds[run], 1)))

    csv_path = os.path.join(a.out, "results.csv")
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in CSV_FIELDS})
    compare_rows = []
    if cmp_run:
        for mode in a.modes:
            compare_rows += [r for r in rows if r["mode"] == mode and r["eval_len"] == 2 * L and
                             r["run"] in (best.get("alibi", ("",))[0], cmp_run)]
    md = markdown(a, rows, compare_rows, train_seconds, sweep_rows, best)
    md_path = os.path.join(a.out, "results.md")
    with open(md_path, "w") as f:
        f.write(md)

    plot_path = os.path.join(a.out, "plot.png")
    if not a.no_plot:
        py = plot_python()
        if py is None:
            sys.exit("experiment: no python3 with matplotlib found for the plot; install "
                     f"python3-matplotlib (bash scripts/setup.sh). Results are in {csv_path}")
        title = a.title or f"trained at L = {L}"
        r = subprocess.run([py, os.path.join(REPO, "scripts", "plot.py"), csv_path, "--out",
                            plot_path, "--title", title])
        if r.returncode != 0:
            sys.exit(f"experiment: scripts/plot.py failed (exit {r.returncode})")
    print()
    print(md)
    log(f"results: {csv_path}, {md_path}")
    if not a.no_plot:
        log(f"plot: {os.path.abspath(plot_path)}")
    log(f"experiment wall time {time.monotonic() - t_start:.0f} s")


if __name__ == "__main__":
    main()
