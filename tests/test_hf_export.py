#!/usr/bin/env python3
"""ctest: transformers runs an `alibi export` to the loss `alibi eval` gives its checkpoint.

    python3 tests/test_hf_export.py ALIBI_BINARY

For every family `alibi export --help` lists (model/hf/registry.cpp), its reference model
(tests/golden/hf/NAME) imported; and two tiny models trained 10 steps on the start of the bundled
corpus (data/default-corpus.txt.xz) with the MPT test folder's tokenizer, one with MPT's options
and one with BLOOM's (docs/hf.md, "Export"). Each is exported with `alibi export --to-hf` and
scored on SCORED_LINES lines from later in the corpus, which training did not see, in 32-token
windows: by `alibi eval --json` and by transformers itself (tests/ref/hf_loss.py, fp32, eager
attention). The losses must agree within 1e-4 nats (fp32 sums over about 1,800 targets, two
implementations).

Needs torch, transformers and tokenizers in the Python named by $ALIBI_HF_PYTHON (default:
python3). Exits 77 (skipped, by name) where they are missing: CI has no torch, so there the
export is checked by the byte-for-byte round trip
(HfImportCli.ExportGivesBackTheFolderTransformersSaved).
"""
import json
import lzma
import os
import re
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(REPO, "data", "default-corpus.txt.xz")
TRAIN_CHARS = 60000
SCORED_FROM, SCORED_LINES = 100000, 50  # a character offset past the training text; whole lines
SKIP = 77
TOLERANCE = 1e-4
MODEL = ["--layers", "1", "--d-model", "24", "--heads", "3", "--ffn", "96", "--seq-len", "32",
         "--batch", "4", "--steps", "10", "--warmup", "2", "--lr", "3e-3", "--seed", "3"]
# The train flags that give a model a family's options, for the families `alibi train` can
# make (a family whose options have no flags is checked on its reference model only).
TRAINED = {"mpt": ["--linear-bias", "false", "--ln-bias", "false", "--gelu", "erf",
                   "--embed-scale", "false"],
           "bloom": ["--embed-scale", "false", "--embed-ln", "true"]}


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"FAIL: {' '.join(cmd)} exited {r.returncode}:\n{r.stderr[-2000:]}")
    return r.stdout


def registered_families(alibi):
    """The families of model/hf/registry.cpp, as `alibi export --help` lists them."""
    m = re.search(r"--family \S+\s+([\w|-]+) \(", run([alibi, "export", "--help"]))
    if not m:
        sys.exit("FAIL: `alibi export --help` lists no families after --family")
    return m.group(1).split("|")


def same_loss(alibi, python, ckpt, hf, text, label):
    """Exports ckpt to hf; exits unless transformers' loss on the text is alibi eval's."""
    run([alibi, "export", ckpt, "--to-hf", hf])
    ours = json.loads(run([alibi, "eval", ckpt, "--text", text, "--lengths", "32",
                           "--json", "-"]))["results"][0]
    theirs = run([python, os.path.join(REPO, "tests", "ref", "hf_loss.py"), hf, text, "32"])
    m = re.search(r"(\d+) targets, loss ([0-9.]+)", theirs)
    if not m:
        sys.exit(f"FAIL: no loss in hf_loss.py's output: {theirs!r}")
    count, loss = int(m.group(1)), float(m.group(2))
    print(f"{label}: alibi eval {ours['loss']:.6f} over {ours['tokens_scored']} targets, "
          f"transformers {loss:.6f} over {count}")
    if count != ours["tokens_scored"] or abs(loss - ours["loss"]) > TOLERANCE:
        sys.exit(f"FAIL: {label}: transformers' loss {loss} over {count} targets, alibi's "
                 f"{ours['loss']} over {ours['tokens_scored']} (tolerance {TOLERANCE})")


def main():
    alibi = os.path.abspath(sys.argv[1])
    python = os.environ.get("ALIBI_HF_PYTHON", "python3")
    probe = subprocess.run([python, "-c", "import torch, transformers, tokenizers"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        print(f"skipped: {python} cannot import torch, transformers and tokenizers "
              "(set ALIBI_HF_PYTHON to a Python that can)")
        sys.exit(SKIP)
    with tempfile.TemporaryDirectory() as tmp:
        corpus, text = os.path.join(tmp, "corpus.txt"), os.path.join(tmp, "text.txt")
        with lzma.open(CORPUS, "rt", encoding="utf-8") as f:
            whole = f.read()
        open(corpus, "w", encoding="utf-8").write(whole[:TRAIN_CHARS])
        lines = whole[SCORED_FROM:].splitlines(keepends=True)[1:SCORED_LINES + 1]
        open(text, "w", encoding="utf-8").write("".join(lines))
        families = registered_families(alibi)
        if not set(TRAINED) <= set(families):
            sys.exit(f"FAIL: TRAINED names {sorted(set(TRAINED) - set(families))}, which "
                     f"`alibi export --help` does not list ({families})")
        for family in families:
            ckpt, hf = os.path.join(tmp, family + "-import"), os.path.join(tmp, family + "-ref")
            run([alibi, "import", os.path.join(REPO, "tests", "golden", "hf", family), "--out",
                 ckpt])
            same_loss(alibi, python, ckpt, hf, text, f"{family} (reference model)")
        data = os.path.join(tmp, "data")
        run([alibi, "prepare", "--input", corpus, "--out", data, "--tokenizer-from",
             os.path.join(REPO, "tests", "golden", "hf", "mpt", "tokenizer.json")])
        for family, options in TRAINED.items():
            ckpt, hf = os.path.join(tmp, family), os.path.join(tmp, family + "-hf")
            run([alibi, "--threads", "1", "train", "--data", data, "--out", ckpt] + MODEL +
                options)
            same_loss(alibi, python, ckpt, hf, text, f"{family} (trained here)")
    print(f"export: transformers' loss equals alibi eval's for {', '.join(families)} (reference "
          f"models) and {', '.join(TRAINED)} (trained here)")


if __name__ == "__main__":
    main()
