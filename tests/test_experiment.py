#!/usr/bin/env python3
"""ctest: scripts/experiment.py's learning-rate sweep on a tiny model (seconds).

    python3 tests/test_experiment.py ALIBI_BINARY

Checks the protocol, not the numbers: that a method whose best rate is at the edge of its grid
tries twice that rate (--bracket), that it stops after --bracket extensions or once the best is
inside the grid, that --bracket 0 never extends, and that best.json names the run with the
lowest perplexity of the sweep table (sweep.csv) at the training length. Then that a study's
record (scripts/study_record.py) restores into a fresh folder and continues there.
"""
import csv
import json
import lzma
import os
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_experiment(alibi, data, out, lrs, bracket, factors="1", methods="alibi"):
    cmd = [sys.executable, os.path.join(REPO, "scripts", "experiment.py"), "--alibi", alibi,
           "--data", data, "--out", out, "--methods", methods, "--no-compare", "--seq-len", "16",
           "--factors", factors, "--layers", "1", "--d-model", "16", "--heads", "2", "--ffn", "32",
           "--batch", "4", "--steps", "20", "--warmup", "2", "--lrs", lrs, "--bracket",
           str(bracket), "--jobs", "2", "--threads", "1", "--max-tokens", "2048", "--no-plot"]
    return subprocess.run(cmd, capture_output=True, text=True)


def experiment(alibi, data, out, lrs, bracket):
    r = run_experiment(alibi, data, out, lrs, bracket)
    assert r.returncode == 0, r.stdout + r.stderr
    with open(os.path.join(out, "sweep.csv")) as f:
        sweep = list(csv.DictReader(f))
    best = json.load(open(os.path.join(out, "best.json")))["alibi"]
    tried = sorted(float(r["lr"]) for r in sweep)
    lowest = min(sweep, key=lambda r: float(r["ppl"]))
    assert os.path.basename(best["run"]) == lowest["run"], (best, lowest)
    return tried, float(best["lr"])


def main():
    alibi = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        text = os.path.join(tmp, "corpus.txt")
        with lzma.open(os.path.join(REPO, "data", "default-corpus.txt.xz"), "rt") as f:
            open(text, "w").write(f.read()[:200_000])
        data = os.path.join(tmp, "data")
        subprocess.run([alibi, "prepare", "--input", text, "--out", data, "--tokenizer", "bytes"],
                       check=True, capture_output=True)
        # Rates far below this model's optimum: the largest wins, so the grid grows upwards,
        # one doubling per round, until --bracket runs out.
        tried, lr = experiment(alibi, data, os.path.join(tmp, "up"), "1e-5,2e-5", 2)
        assert tried == [1e-5, 2e-5, 4e-5, 8e-5], tried
        assert lr == 8e-5, lr
        tried, lr = experiment(alibi, data, os.path.join(tmp, "off"), "1e-5,2e-5", 0)
        assert tried == [1e-5, 2e-5] and lr == 2e-5, (tried, lr)
        # Above the optimum the smallest wins, and the grid grows downwards. (Not so far above
        # that both diverge: which of two diverged runs scores lower is down to rounding.)
        tried, lr = experiment(alibi, data, os.path.join(tmp, "down"), "0.5,1", 1)
        assert tried == [0.25, 0.5, 1], tried
        check_learned_refusal(alibi, data, tmp)
        check_record(alibi, data, tmp)
    print("experiment.py tuning and study record: ok")


def check_learned_refusal(alibi, data, tmp):
    """learned cannot run past its table: its evaluation at 2L is recorded as refused and the
    experiment goes on (the CLI's refusal, exit 2, names --pos learned)."""
    out = os.path.join(tmp, "learned")
    r = run_experiment(alibi, data, out, "1e-3", 0, factors="1,2", methods="learned")
    assert r.returncode == 0, r.stdout + r.stderr
    rows = {(x["eval_len"], x["status"])
            for x in csv.DictReader(open(os.path.join(out, "results.csv")))}
    assert ("16", "ok") in rows and ("32", "refused") in rows, rows


def record(action, src, dst):
    subprocess.run([sys.executable, os.path.join(REPO, "scripts", "study_record.py"), action, src,
                    dst], check=True, capture_output=True)


def check_record(alibi, data, tmp):
    """A study saved without its weights (study_record.py) and restored elsewhere, its data
    folder moved too: its recorded runs and evaluations are reused, a run whose weights an
    evaluation needs is retrained and checked against its recorded final loss, and a record that
    does not match is refused."""
    moved = os.path.join(tmp, "elsewhere", os.path.basename(data))
    os.makedirs(os.path.dirname(moved))
    os.rename(data, moved)
    data = moved
    work, rec = os.path.join(tmp, "work"), os.path.join(tmp, "record")
    os.makedirs(work)
    os.rename(os.path.join(tmp, "off"), os.path.join(work, "off"))
    record("save", work, rec)
    assert not any(f.endswith(".safetensors") for _, _, fs in os.walk(rec) for f in fs)
    for fresh, tamper in (("fresh", False), ("tampered", True)):
        record("restore", rec, os.path.join(tmp, fresh))
        out = os.path.join(tmp, fresh, "off")
        if tamper:
            t = os.path.join(out, "runs", "alibi-L16-lr2e-05", "timing.json")
            j = json.load(open(t))
            j["final_loss"] += 1e-3
            json.dump(j, open(t, "w"))
        r = run_experiment(alibi, data, out, "1e-5,2e-5", 0, factors="1,2")
        if tamper:
            assert r.returncode != 0 and "not the recorded" in r.stderr, r.stdout + r.stderr
            continue
        assert r.returncode == 0, r.stdout + r.stderr
        assert r.stdout.count("retraining the recorded run") == 1, r.stdout  # the best run only
        assert "[train] alibi-L16-lr1e-05: /" not in r.stdout, r.stdout  # sweep runs reused
        old = {(x["eval_len"], x["ppl"]) for x in csv.DictReader(open(os.path.join(work, "off", "results.csv")))}
        new = {(x["eval_len"], x["ppl"]) for x in csv.DictReader(open(os.path.join(out, "results.csv")))}
        assert old < new and len(new) == 2, (old, new)
        # Any recorded run's weights on request, from the data where it lies now (the
        # recorded --data path is gone), checked against the recorded loss; a second request
        # finds them there.
        run = os.path.join(out, "runs", "alibi-L16-lr1e-05")
        for _ in range(2):
            w = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "study_record.py"),
                                "weights", run, "--alibi", alibi, "--threads", "1", "--data",
                                data], capture_output=True, text=True)
            assert w.returncode == 0, w.stdout + w.stderr
            assert any(f.endswith(".safetensors") for f in os.listdir(run)), os.listdir(run)
        # A --data that is not there: one line naming the flag and the path, exit 2.
        w = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "study_record.py"),
                            "weights", run, "--data", os.path.join(tmp, "gone")],
                           capture_output=True, text=True)
        assert w.returncode == 2 and w.stderr.count("\n") == 1, w.stderr
        assert "--data" in w.stderr and "gone" in w.stderr, w.stderr


if __name__ == "__main__":
    main()
