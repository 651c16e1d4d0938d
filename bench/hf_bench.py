"""alibi against transformers on a BLOOM-560m-shaped model (24 layers, d 1024, 16 heads,
vocabulary 250,880; random weights saved as BF16): evaluation tokens/s and peak RSS at each
length (transformers eager and sdpa in fp32; alibi on the bf16 and the fp32 import with fp32
products, and on a CPU with AVX512-BF16 the bf16 import with bf16 products, `eval --dtype bf16`),
alibi alone at a long window, decoding tokens/s (the bf16, f16 and fp32 imports) against
transformers' generate and against the bandwidth limit (weight bytes read per token over a
streaming read measured in the same run).

    python3 bench/hf_bench.py --work W [--threads 2] [--lengths 1024,4096] [--long 16384]
        [--parts eval,decode] [--llama-bench PATH --gguf W/bloom-560m-bf16.gguf [--gguf ...]]

With --llama-bench, llama.cpp's decoding of the same weights (each --gguf, converted by
bench/gguf_convert.py) is timed in the same rounds.

Needs torch, transformers and tokenizers (a comparison benchmark: the product never needs
Python) and a built alibi (build/alibi, build/bench/bench_stream). Each measurement runs in a
fresh process, so its peak RSS is its own; the same threads everywhere. Prints a Markdown table
and writes W/hf_bench.json. Takes about 15 minutes on 2 cores (transformers at 4k is most).
"""
import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
TOKENIZER = os.path.join(REPO, "tests", "golden", "hf", "bloom", "tokenizer.json")
TEXT = os.path.join(REPO, "..", "shared", "data", "wikitext-2", "test.txt")
PROMPT = 16


def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def make_model(folder):
    """Random BLOOM-560m-shaped weights (the library's initialisation), saved as BF16."""
    import shutil
    import torch
    from transformers import BloomConfig, BloomForCausalLM
    torch.manual_seed(0)
    cfg = BloomConfig(vocab_size=250880, hidden_size=1024, n_layer=24, n_head=16)
    model = BloomForCausalLM(cfg).to(torch.bfloat16)
    model.save_pretrained(folder, safe_serialization=True)
    shutil.copy(TOKENIZER, os.path.join(folder, "tokenizer.json"))


def token_ids(n):
    from tokenizers import Tokenizer
    ids = Tokenizer.from_file(TOKENIZER).encode(open(TEXT, encoding="utf-8").read()).ids
    assert len(ids) >= n, (len(ids), n)
    return ids[:n]


def hf_eval(model_dir, attn, length, threads):
    """One window of `length` tokens through transformers (fp32): tokens/s, loss, peak RSS."""
    import torch
    from transformers import AutoModelForCausalLM
    torch.set_num_threads(threads)
    try:
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32,
                                                     attn_implementation=attn).eval()
    except ValueError as e:  # transformers 5.x's BLOOM has eager attention only
        return {"unsupported": str(e).split(".")[0]}
    x = torch.tensor([token_ids(length + 1)])
    with torch.no_grad():
        t0 = time.perf_counter()
        logits = model(x[:, :-1]).logits[0]
        # the L targets alibi scores (labels= would shift inside and score L - 1)
        loss = torch.nn.functional.cross_entropy(logits, x[0, 1:])
        seconds = time.perf_counter() - t0
    return {"tokens_per_s": length / seconds, "loss": float(loss), "peak_mb": peak_mb()}


def hf_decode(model_dir, new, threads):
    """Greedy generate() with the KV cache (fp32): decode tokens/s, prefill excluded."""
    import torch
    from transformers import AutoModelForCausalLM
    torch.set_num_threads(threads)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    x = torch.tensor([token_ids(PROMPT)])
    kw = dict(do_sample=False, use_cache=True, pad_token_id=0, eos_token_id=None)
    with torch.no_grad():
        model.generate(x, max_new_tokens=2, **kw)  # warm-up
        t0 = time.perf_counter()
        model.generate(x, max_new_tokens=1, **kw)
        t1 = time.perf_counter()
        model.generate(x, max_new_tokens=new + 1, **kw)
        t2 = time.perf_counter()
    return {"tokens_per_s": new / ((t2 - t1) - (t1 - t0)), "peak_mb": peak_mb()}


def run(cmd, env=None):
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr[-2000:]}")
    return r


def child(args, *extra):
    r = run([sys.executable, os.path.abspath(__file__), *extra, "--threads", str(args.threads)])
    return json.loads(r.stdout.strip().splitlines()[-1])


def cpu_has_bf16():
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        return "avx512_bf16" in f.read()


def alibi_eval(args, ckpt, text, length, dtype="fp32"):
    r = run([args.alibi, "--threads", str(args.threads), "eval", ckpt, "--text", text,
             "--lengths", str(length), "--max-tokens", str(length + 1), "--json", "-",
             "--dtype", dtype])
    res = json.loads(r.stdout)["results"][0]
    return {"tokens_per_s": res["tokens_per_s"], "loss": res["loss"], "peak_mb": res["peak_rss_mb"]}


def alibi_decode(args, ckpt, prompt_file, new):
    r = run([args.alibi, "--threads", str(args.threads), "generate", ckpt, "--prompt-file",
             prompt_file, "--max-new-tokens", str(new), "--temperature", "0"])
    m = re.search(r"decode: \d+ tokens in [\d.]+ s \(([\d.]+) tokens/s\).*peak RSS ([\d.]+) MiB",
                  r.stderr)
    assert m, r.stderr
    return {"tokens_per_s": float(m.group(1)), "peak_mb": float(m.group(2))}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", required=True, help="folder for the model, checkpoints and results")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lengths", default="1024,4096", help="evaluation windows for both")
    ap.add_argument("--long", type=int, default=16384, help="a window for alibi alone (0: none)")
    ap.add_argument("--decode", type=int, default=32, help="tokens decoded after a 16-token prompt")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of streaming read and decoding")
    ap.add_argument("--alibi", default=os.path.join(REPO, "build", "alibi"))
    ap.add_argument("--stream", default=os.path.join(REPO, "build", "bench", "bench_stream"))
    ap.add_argument("--skip-hf", action="store_true", help="alibi's side only")
    ap.add_argument("--parts", default="eval,decode", help="eval, decode or both")
    ap.add_argument("--llama-bench", help="llama.cpp's llama-bench: also time its decoding (tg)")
    ap.add_argument("--gguf", action="append", default=[],
                    help="the model converted by llama.cpp's convert_hf_to_gguf.py (repeatable)")
    ap.add_argument("--hf-eval", nargs=2, metavar=("ATTN", "LENGTH"), help=argparse.SUPPRESS)
    ap.add_argument("--hf-decode", type=int, metavar="NEW", help=argparse.SUPPRESS)
    args = ap.parse_args()
    hf_dir = os.path.join(args.work, "bloom-560m")
    if args.hf_eval:
        print(json.dumps(hf_eval(hf_dir, args.hf_eval[0], int(args.hf_eval[1]), args.threads)))
        return
    if args.hf_decode:
        print(json.dumps(hf_decode(hf_dir, args.hf_decode, args.threads)))
        return

    if not os.path.exists(TEXT):  # before the minutes that making the model takes
        sys.exit(f"bench/hf_bench.py: {TEXT} is missing: the benchmark reads WikiText-2 from the "
                 "shared corpora beside the clone")
    os.makedirs(args.work, exist_ok=True)
    if not os.path.exists(os.path.join(hf_dir, "config.json")):
        make_model(hf_dir)
    ckpts = {}
    for dtype in ("bf16", "f16", "fp32"):
        ckpts[dtype] = os.path.join(args.work, f"alibi-{dtype}")
        if not os.path.isdir(ckpts[dtype]):
            run([args.alibi, "import", hf_dir, "--out", ckpts[dtype], "--dtype", dtype])
    lengths = [int(x) for x in args.lengths.split(",")]
    longest = max(lengths + [args.long])
    # alibi reads text: the decoded ids give back exactly these ids (byte-level BPE).
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(TOKENIZER)
    text = os.path.join(args.work, "text.txt")
    ids = token_ids(longest + 1)
    with open(text, "w", encoding="utf-8") as f:
        f.write(tok.decode(ids))
    prompt = os.path.join(args.work, "prompt.txt")
    with open(prompt, "w", encoding="utf-8") as f:
        f.write(tok.decode(ids[:PROMPT]))

    res = {"threads": args.threads, "eval": {}, "decode": {}}
    parts = args.parts.split(",")
    for L in (lengths if "eval" in parts else []):
        row = {f"alibi-{d}": alibi_eval(args, ckpts[d], text, L) for d in ("bf16", "fp32")}
        if cpu_has_bf16():
            row["alibi-bf16-products"] = alibi_eval(args, ckpts["bf16"], text, L, "bf16")
        if not args.skip_hf:
            for attn in ("eager", "sdpa"):
                row[f"transformers-{attn}"] = child(args, "--work", args.work,
                                                    "--hf-eval", attn, str(L))
        res["eval"][L] = row
        print(json.dumps({L: row}), file=sys.stderr)
    if args.long and "eval" in parts:
        res["eval"][args.long] = {"alibi-bf16": alibi_eval(args, ckpts["bf16"], text, args.long)}
    # The bandwidth of a shared machine drifts by tens of percent within minutes: the streaming
    # read and alibi's decoding alternate over rounds, each keeping its best.
    env_threads = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    gbs = 0.0
    for _ in range(args.rounds if "decode" in parts else 0):
        stream = run([args.stream, "--mb", "2048", "--passes", "3"], env=env_threads).stdout
        gbs = max(gbs, float(re.search(r"([\d.]+) GB/s", stream).group(1)))
        for d in ("bf16", "f16", "fp32"):
            r = alibi_decode(args, ckpts[d], prompt, args.decode)
            best = res["decode"].get(f"alibi-{d}")
            if best is None or r["tokens_per_s"] > best["tokens_per_s"]:
                res["decode"][f"alibi-{d}"] = r
        for gguf in args.gguf if args.llama_bench else ():
            who = f"llama.cpp {os.path.basename(gguf)}"
            r = llama_decode(args, gguf)
            best = res["decode"].get(who)
            if best is None or r["tokens_per_s"] > best["tokens_per_s"]:
                res["decode"][who] = r
    res["stream_gb_s"] = gbs
    if not args.skip_hf and "decode" in parts:
        res["decode"]["transformers"] = child(args, "--work", args.work,
                                              "--hf-decode", str(args.decode))
    # Bytes of weights one decoded token reads: every matrix once (the embedding row and the KV
    # cache of a short context are negligible), from the safetensors headers.
    for d in ("bf16", "f16", "fp32") if "decode" in parts else ():
        nbytes = matrix_bytes(ckpts[d])
        res["decode"][f"alibi-{d}"]["bytes_per_token"] = nbytes
        res["decode"][f"alibi-{d}"]["limit_tokens_per_s"] = gbs * 1e9 / nbytes
        for who, r in res["decode"].items():  # llama.cpp reads the same bytes in that type
            if who.startswith("llama.cpp") and who.lower().endswith(f"-{d}.gguf"):
                r["limit_tokens_per_s"] = gbs * 1e9 / nbytes
    with open(os.path.join(args.work, "hf_bench.json"), "w") as f:
        json.dump(res, f, indent=2)
    print_table(res)


def llama_decode(args, gguf):
    """llama-bench's decoding of `--decode` tokens (tg), from an empty context."""
    r = run([args.llama_bench, "-m", gguf, "-t", str(args.threads), "-p", "0",
             "-n", str(args.decode), "-r", "2", "-o", "json"])
    return {"tokens_per_s": json.loads(r.stdout)[0]["avg_ts"], "peak_mb": float("nan")}


def matrix_bytes(run_dir):
    """Bytes of the weight matrices (wte, lm_head.w, the linears' .w) of a run's checkpoint."""
    import struct
    name = sorted(f for f in os.listdir(run_dir) if f.endswith(".safetensors"))[-1]
    with open(os.path.join(run_dir, name), "rb") as f:
        header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
    return sum(t["data_offsets"][1] - t["data_offsets"][0] for k, t in header.items()
               if k != "__metadata__" and k.endswith(".w") and t["dtype"] in ("F32", "BF16", "F16")
               and len(t["shape"]) == 2 or k == "wte")


def print_table(res):
    stream = f"; streaming read {res['stream_gb_s']:.2f} GB/s" if res["stream_gb_s"] else ""
    print(f"threads {res['threads']}{stream}\n")
    print("| length | who | tokens/s | x transformers-eager | x sdpa | peak RSS MB | loss |")
    print("|---|---|---|---|---|---|---|")
    for L, row in res["eval"].items():
        eager = row.get("transformers-eager", {}).get("tokens_per_s")
        sdpa = row.get("transformers-sdpa", {}).get("tokens_per_s")  # None where unsupported
        for who, r in row.items():
            if "unsupported" in r:
                print(f"| {L} | {who} | - | - | - | - | {r['unsupported']} |")
                continue
            xe = f"{r['tokens_per_s'] / eager:.2f}" if eager else "-"
            xs = f"{r['tokens_per_s'] / sdpa:.2f}" if sdpa else "-"
            print(f"| {L} | {who} | {r['tokens_per_s']:.1f} | {xe} | {xs} | {r['peak_mb']:.0f} "
                  f"| {r.get('loss', float('nan')):.5f} |")
    print("\n| decode | tokens/s | x transformers | bandwidth limit | of limit | peak RSS MB |")
    print("|---|---|---|---|---|---|")
    hf = res["decode"].get("transformers", {}).get("tokens_per_s")
    for who, r in res["decode"].items():
        tps = r["tokens_per_s"]
        xh = f"{tps / hf:.2f}" if hf else "-"
        lim = r.get("limit_tokens_per_s")
        limit, share = (f"{lim:.2f}", f"{tps / lim:.0%}") if lim else ("-", "-")
        print(f"| {who} | {tps:.2f} | {xh} | {limit} | {share} | {r['peak_mb']:.0f} |")


if __name__ == "__main__":
    main()
