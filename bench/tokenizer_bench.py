"""Tokenizer throughput and memory: alibi's tokenizer.json encoder against Python `tokenizers`
(the Rust library HF uses) on the same file and tokenizer, measured in the same run.

    /tmp/tok/bin/python bench/tokenizer_bench.py [--alibi build/alibi] [--repeats 5]

Needs a python with `tokenizers` (pip install tokenizers). For each tokenizer and corpus it
times, alternating, `alibi --threads N tokenize --no-special --json` (its own encode_seconds:
the encoding alone, the file already read and the tokenizer loaded) and tokenizers'
`Tokenizer.encode(text, add_special_tokens=False)` on the whole text (one thread, as HF encodes
one string), checks the ids agree, and prints the median MB/s of each and their ratio, then
alibi's scaling from 1 to 2 threads and the memory the loaded tokenizer takes. It also times
tokenizers' encode_batch over the lines of the text on one thread (RAYON_NUM_THREADS=1), the
way corpora are usually fed to it (its ids can differ where a token would span lines).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

os.environ["RAYON_NUM_THREADS"] = "1"  # encode_batch on one thread too: a like-for-like baseline
from tokenizers import Tokenizer  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN = os.path.join(REPO, "tests", "golden", "tokenizer")
SHARED = os.path.join(REPO, "..", "shared", "data")


def alibi_encode(alibi, tok, path, threads):
    r = subprocess.run([alibi, "--threads", str(threads), "tokenize", "--tokenizer", tok,
                        "--text", path, "--no-special", "--json"],
                       check=True, capture_output=True, text=True)
    return json.loads(r.stdout)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--alibi", default=os.path.join(REPO, "build", "alibi"))
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()
    corpora = [os.path.join(SHARED, "gutenberg", "doyle-adventures_of_sherlock_holmes.txt"),
               os.path.join(SHARED, "wikitext-2", "train.txt")]
    for corpus in corpora:
        if not os.path.exists(corpus):
            sys.exit(f"bench/tokenizer_bench.py: {corpus} is missing: the benchmark reads the "
                     "shared corpora beside the clone")
    print("| tokenizer | corpus | MB | tokens | alibi 1 thread MB/s | tokenizers encode MB/s | ratio "
          "| tokenizers encode_batch (lines) MB/s | ratio | alibi 2 threads MB/s | 2 vs 1 thread |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in ("bloom", "neox"):
        tok_path = os.path.join(GOLDEN, name + ".tokenizer.json")
        hf = Tokenizer.from_file(tok_path)
        for corpus in corpora:
            text = open(corpus, encoding="utf-8").read()
            mb = len(text.encode("utf-8")) / 1e6
            ours, theirs, batch, ours2 = [], [], [], []
            lines = text.splitlines(keepends=True)
            ids = None
            for _ in range(a.repeats):  # alternate, so both see the same machine load
                j = alibi_encode(a.alibi, tok_path, corpus, 1)
                ours.append(mb / j["encode_seconds"])
                t0 = time.perf_counter()
                ids = hf.encode(text, add_special_tokens=False).ids
                theirs.append(mb / (time.perf_counter() - t0))
                t0 = time.perf_counter()
                hf.encode_batch(lines, add_special_tokens=False)
                batch.append(mb / (time.perf_counter() - t0))
                ours2.append(mb / alibi_encode(a.alibi, tok_path, corpus, 2)["encode_seconds"])
            assert j["ids"] == ids, f"{name} on {corpus}: ids differ"
            o, t, o2 = statistics.median(ours), statistics.median(theirs), statistics.median(ours2)
            b = statistics.median(batch)
            print(f"| {name} | {os.path.basename(corpus)} | {mb:.1f} | {len(ids):,} | {o:.2f} | "
                  f"{t:.2f} | {o / t:.2f}x | {b:.2f} | {o / b:.2f}x | {o2:.2f} | {o2 / o:.2f}x |")
    for name in ("bloom", "neox"):
        tok_path = os.path.join(GOLDEN, name + ".tokenizer.json")
        j = alibi_encode(a.alibi, tok_path, os.path.join(GOLDEN, "texts", "code.txt"), 1)
        size = os.path.getsize(tok_path) / 2**20
        print(f"{name}: tokenizer.json {size:.3f} MiB, loaded tokenizer {j['tokenizer_rss_mb']:.3f} MiB "
              f"resident ({j['tokenizer_rss_mb'] / size:.1f}x), load {j['load_seconds'] * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
