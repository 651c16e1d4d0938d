#!/usr/bin/env python3
"""The record of a study: every number of it without the weights, small enough to commit.

  python3 scripts/study_record.py save WORK RECORD      # WORK's results into RECORD
  python3 scripts/study_record.py restore RECORD WORK   # RECORD into WORK, where WORK lacks them
  python3 scripts/study_record.py weights RUN --alibi BIN --threads N [--data DIR]   # retrain a run

A study (scripts/study.sh) takes longer than a machine may be kept. Its record holds, for each
experiment folder, the tables (results.csv, results.md, sweep.csv, best.json), every evaluation
(evals/*.json), the per-position curves (positions-*.csv, positions.md), and for each run its
timing.json: the training command, its wall time and its final loss. Restored into a fresh WORK,
experiment.py reuses the recorded runs and evaluations; a run whose weights are needed again
(an evaluation the record lacks) is retrained from its command and checked against its recorded
final loss (scripts/experiment.py, restore_weights). Uses only the Python standard library.
"""
import argparse
import json
import os
import shutil

TOP = ("results.csv", "results.md", "sweep.csv", "best.json", "positions.md")


def recorded(work):
    """The files of WORK a record keeps, as paths relative to WORK."""
    if os.path.exists(os.path.join(work, "positions.md")):
        yield "positions.md"
    for exp in sorted(os.listdir(work)):
        d = os.path.join(work, exp)
        if not os.path.isdir(os.path.join(d, "runs")) and not os.path.isdir(os.path.join(d, "evals")):
            continue  # a prepared data folder, or not an experiment
        for f in sorted(os.listdir(d)):
            if f in TOP or (f.startswith("positions-") and f.endswith(".csv")):
                yield os.path.join(exp, f)
        for f in sorted(os.listdir(os.path.join(d, "evals")) if os.path.isdir(os.path.join(d, "evals")) else []):
            if f.endswith(".json"):
                yield os.path.join(exp, "evals", f)
        runs = os.path.join(d, "runs")
        for r in sorted(os.listdir(runs) if os.path.isdir(runs) else []):
            if os.path.exists(os.path.join(runs, r, "timing.json")):
                yield os.path.join(exp, "runs", r, "timing.json")


def final_loss(run):
    """The training loss of the last step in RUN/log.jsonl (None if there is none)."""
    path, last = os.path.join(run, "log.jsonl"), None
    if os.path.exists(path):
        for line in open(path):
            last = json.loads(line).get("loss", last)
    return last


def save(work, record):
    n = 0
    for rel in recorded(work):
        src, dst = os.path.join(work, rel), os.path.join(record, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if rel.endswith("timing.json"):
            t = json.load(open(src))
            if t.get("final_loss") is None:  # timing.json of an older experiment.py
                t["final_loss"] = final_loss(os.path.dirname(src))
            with open(dst + ".tmp", "w") as f:
                json.dump(t, f)
            os.replace(dst + ".tmp", dst)
        else:
            shutil.copyfile(src, dst + ".tmp")
            os.replace(dst + ".tmp", dst)
        n += 1
    print(f"study_record: {n} files from {work} saved in {record}")


def restore(record, work):
    n = 0
    for rel in recorded(record):
        dst = os.path.join(work, rel)
        if not os.path.exists(dst):
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copyfile(os.path.join(record, rel), dst)
            n += 1
    print(f"study_record: {n} files from {record} restored into {work}")


def main():
    class OneLine(argparse.ArgumentParser):
        def error(self, message):  # one line naming the value, exit 2 (no usage block)
            self.exit(2, f"study_record: error: {message}\n")

    p = OneLine(description=__doc__.split("\n\n")[0])
    p.add_argument("action", choices=["save", "restore", "weights"])
    p.add_argument("src", help="save: the study's WORK; restore: the RECORD; weights: the run")
    p.add_argument("dst", nargs="?", help="save: the RECORD; restore: the study's WORK")
    p.add_argument("--alibi", default="build/alibi", help="weights: the alibi binary")
    p.add_argument("--threads", type=int, default=1, help="weights: threads (as recorded)")
    p.add_argument("--data", default=None,
                   help="weights: the prepared data folder (default: the recorded one)")
    a = p.parse_args()
    if a.action == "weights":
        from experiment import latest_step, restore_weights  # experiment.py imports this file
        if not os.path.exists(os.path.join(a.src, "timing.json")):
            p.error(f"'{a.src}' is not a recorded run (no timing.json)")
        if a.data is not None and not os.path.isdir(a.data):
            p.error(f"--data '{a.data}' is not a folder; expected the prepared data the run "
                    "was trained on (alibi prepare)")
        if latest_step(a.src) < 0:
            restore_weights(a, a.src)
        return
    if a.dst is None:
        p.error(f"{a.action}: expected a destination folder")
    if not os.path.isdir(a.src):
        p.error(f"'{a.src}' is not a folder; expected a study "
                f"{'WORK' if a.action == 'save' else 'record' if a.action == 'restore' else 'run'}")
    (save if a.action == "save" else restore)(a.src, a.dst)


if __name__ == "__main__":
    main()
