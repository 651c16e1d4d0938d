"""Perplexity of alibi against llama-perplexity on the same GGUF files and the same text
(docs/gguf.md): a BLOOM-shaped checkpoint trained here is exported (`alibi export --to-hf`),
converted to F16 by llama.cpp's convert_hf_to_gguf.py (bench/gguf_convert.py, pre-tokenizer
"gpt-2": the split of `alibi prepare --tokenizer bytebpe`), quantized by llama-quantize to each
preset, and scored by both on the WikiText-2 test text:

  llama-perplexity -m FILE -f TEXT -c L -t THREADS         (its defaults: an f16 KV cache)
  alibi eval FILE --text TEXT --mode second-half --lengths L --dtype D --threads THREADS

--mode second-half is llama-perplexity's protocol (src/eval/eval.h): the whole chunks of L tokens,
each scoring its rows L/2 .. L - 2. D is int8 for the files whose products alibi runs on 8-bit
activations, as llama.cpp does (Q8_0, Q4_0, Q4_K, Q6_K), and fp32 as well; F16 runs fp32.

    bash bench/llama_build.sh /work/llama-build
    LLAMA=/work/llama-build python3 bench/gguf_perplexity.py RUN WORK [--ctx 256,1024]
        [--presets Q8_0,...] [--text FILE] [--threads 2]

RUN: a checkpoint whose options are BLOOM's (train --embed-ln true --gelu tanh --ffn 4C).
--text defaults to ../shared/data/wikitext-2/test.txt. Adds its rows to WORK/perplexity.json
(replacing those of the same file and n_ctx) and prints them as a markdown table. Files already in
WORK are reused.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
PRESETS = "F16,Q8_0,Q4_0,Q4_1,Q5_0,Q5_1,Q4_K_M,Q5_K_M,Q6_K"
INT8 = {"Q8_0", "Q4_0", "Q4_K_M", "Q6_K"}  # presets whose main types alibi runs on int8


def run(cmd, **kw):
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        sys.exit(f"gguf_perplexity: {' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-2000:]}")
    return p, time.time() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run")
    ap.add_argument("work")
    ap.add_argument("--ctx", default="256,1024", help="n_ctx values, comma-separated")
    ap.add_argument("--presets", default=PRESETS)
    ap.add_argument("--text", default=os.path.join(REPO, "..", "shared", "data", "wikitext-2",
                                                   "test.txt"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--python", default=os.environ.get("PYTHON", "/work/venv/bin/python"))
    a = ap.parse_args()
    llama = os.environ.get("LLAMA")
    if not llama:
        sys.exit("gguf_perplexity: set LLAMA to the folder of bench/llama_build.sh")
    if not os.path.isfile(a.text):
        sys.exit(f"gguf_perplexity: --text '{a.text}' does not exist; the default is WikiText-2's "
                 "test text in ../shared/data/wikitext-2 (scripts/shared_data.sh)")
    alibi = os.path.join(REPO, "build", "alibi")
    bins = os.path.join(llama, "build", "bin")
    vendor = os.path.join(llama, "src", "vendor", "llama.cpp")
    w = os.path.abspath(a.work)
    os.makedirs(w, exist_ok=True)

    hf, f16 = os.path.join(w, "hf"), os.path.join(w, "model-f16.gguf")
    if not os.path.isdir(hf):
        run([alibi, "export", a.run, "--to-hf", hf, "--family", "bloom"])
    if not os.path.isfile(f16):
        env = dict(os.environ, PYTHONPATH=os.path.join(vendor, "gguf-py"))
        run([a.python, os.path.join(REPO, "bench", "gguf_convert.py"), vendor, hf, "--pre",
             "gpt-2", "--outtype", "f16", "--outfile", f16], env=env)
    rows = []
    for preset in a.presets.split(","):
        f = os.path.join(w, f"model-{preset.lower()}.gguf")
        if not os.path.isfile(f):
            run([os.path.join(bins, "llama-quantize"), f16, f, preset])
        dtypes = ["int8", "fp32"] if preset in INT8 else ["fp32"]
        for ctx in [int(c) for c in a.ctx.split(",")]:
            p, secs = run([os.path.join(bins, "llama-perplexity"), "-m", f, "-f", a.text, "-c",
                           str(ctx), "-t", str(a.threads)])
            log = p.stdout + p.stderr
            m = re.search(r"Final estimate: PPL = ([0-9.]+) \+/- ([0-9.]+)", log)
            chunks = re.search(r"calculating perplexity over (\d+) chunks", log)
            if not m or not chunks:
                sys.exit(f"gguf_perplexity: no estimate in llama-perplexity's output:\n{log[-2000:]}")
            row = {"preset": preset, "ctx": ctx, "llama_ppl": float(m.group(1)),
                   "llama_err": float(m.group(2)), "llama_chunks": int(chunks.group(1)),
                   "llama_seconds": secs, "file_bytes": os.path.getsize(f)}
            for d in dtypes:
                q, secs = run([alibi, "eval", f, "--text", a.text, "--mode", "second-half",
                               "--lengths", str(ctx), "--dtype", d, "--threads", str(a.threads),
                               "--json", "-"])
                r = json.loads(q.stdout)["results"][0]
                row[d] = {"ppl": r["ppl"], "chunks": r["windows"], "seconds": secs,
                          "rel": r["ppl"] / row["llama_ppl"] - 1}
            rows.append(row)
            print(json.dumps(row), flush=True)
    out = os.path.join(w, "perplexity.json")
    done = {(r["preset"], r["ctx"]) for r in rows}
    kept = json.load(open(out))["rows"] if os.path.isfile(out) else []
    json.dump({"run": a.run, "text": a.text, "threads": a.threads,
               "rows": [r for r in kept if (r["preset"], r["ctx"]) not in done] + rows},
              open(out + ".tmp", "w"), indent=1)
    os.replace(out + ".tmp", out)
    print("\n| file | n_ctx | llama-perplexity | alibi int8 | alibi fp32 | chunks |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        cell = lambda d: (f"{r[d]['ppl']:.4f} ({100 * r[d]['rel']:+.3f}%)" if d in r else "")
        print(f"| {r['preset']} | {r['ctx']} | {r['llama_ppl']:.4f} ± {r['llama_err']:.4f} | "
              f"{cell('int8')} | {cell('fp32')} | {r['llama_chunks']} / {r['fp32']['chunks']} |")


if __name__ == "__main__":
    main()
