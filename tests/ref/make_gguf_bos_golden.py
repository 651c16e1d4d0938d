"""Writes tests/golden/gguf/bloom-bos.json: what llama.cpp does with a GGUF whose
tokenizer.ggml.add_bos_token is true (test_gguf_special_tokens.cpp).

    bash bench/llama_build.sh /work/llama-build      # llama.cpp from PyPI's llama-cpp-python sdist
    LLAMA=/work/llama-build /work/venv/bin/python tests/ref/make_gguf_bos_golden.py

The file: tests/golden/gguf/bloom-q8_0.gguf copied by gguf-py (the sdist's) with
tokenizer.ggml.add_bos_token = true added, nothing else changed (its bos_token_id is the
converter's). On it, for bloom.json's text:
  "llama_ids"         llama-tokenize --ids: the text's ids with llama.cpp's special tokens (BOS first)
  "length", "ppl"     llama-perplexity -c LENGTH -b LENGTH -t 2: its Final estimate, which puts BOS
                      at every chunk's start
  "llama"             the llama.cpp build's version string (llama-perplexity --version)
  "prompt", "prompt_ids", "greedy", "logprobs"
                      llama-cpp-python's bindings on that build (its pip requirements besides
                      numpy: diskcache): the prompt tokenized as llama-server and llama.cpp's
                      completion tokenize one (add_special, so BOS first), then GREEDY tokens,
                      each the argmax of the logits, with its log-softmax over the ids whose
                      token_type is not UNUSED: the padding rows past the tokenizer's ids
                      ([PAD300] on) are left out, as alibi samples only among real ids
  "logprobs_all_rows" the same over every row of the output, as llama-server reports them
  "eos_llama_ids"     llama-tokenize --ids on a second copy that also sets
                      tokenizer.ggml.add_eos_token = true: BOS, the text's ids, EOS
"""
import ast
import json
import os
import re
import subprocess
import sys
import tempfile

LLAMA = os.environ["LLAMA"]
sys.path[:0] = [os.path.join(LLAMA, "src", "vendor", "llama.cpp", "gguf-py"),
                os.path.join(LLAMA, "src")]
os.environ["LLAMA_CPP_LIB_PATH"] = os.path.join(LLAMA, "build", "bin")

import gguf  # noqa: E402
import numpy as np  # noqa: E402
from llama_cpp import Llama  # noqa: E402
from gguf.scripts.gguf_new_metadata import MetadataDetails, copy_with_new_metadata  # noqa: E402

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "golden", "gguf")
BIN = os.path.join(LLAMA, "build", "bin")
LENGTH = 16
PROMPT = "ROMEO:\n"
GREEDY = 4


def run(*args):
    env = dict(os.environ, LD_LIBRARY_PATH=BIN)
    return subprocess.run([os.path.join(BIN, args[0]), *args[1:]], capture_output=True,
                          text=True, env=env, check=True)


def variant(tmp, name, flags):
    """bloom-q8_0.gguf copied by gguf-py with each of `flags` added as true."""
    path = os.path.join(tmp, name)
    reader = gguf.GGUFReader(os.path.join(GOLDEN, "bloom-q8_0.gguf"), "r")
    arch = reader.get_field(gguf.Keys.General.ARCHITECTURE).contents()
    writer = gguf.GGUFWriter(path, arch=arch, endianess=reader.endianess)
    copy_with_new_metadata(reader, writer, {
        f: MetadataDetails(gguf.GGUFValueType.BOOL, True) for f in flags}, [])
    return path


def perplexity(path, text_file):
    # llama.cpp logs from a worker thread, and a run this short can exit before the worker has
    # written its last lines: here about half the runs exited 0 with the log ending at
    # "threadpool init". The value is deterministic, so such a run is repeated.
    for _ in range(20):
        out = run("llama-perplexity", "-m", path, "-f", text_file, "-c", str(LENGTH), "-b",
                  str(LENGTH), "-t", "2")
        m = re.search(r"Final estimate: PPL = ([0-9.]+)", out.stdout + out.stderr)
        if m:
            return float(m[1])
    sys.exit("llama-perplexity printed no Final estimate in 20 runs")


def greedy(path):
    llm = Llama(model_path=path, n_ctx=64, n_threads=2, logits_all=True, verbose=False)
    ids = llm.tokenize(PROMPT.encode(), add_bos=True, special=True)
    llm.eval(ids)
    unused = int(gguf.TokenType.UNUSED)
    used = np.array([t != unused for t in token_types(path)])

    def logprob(z, t):
        return float(z[t] - z.max() - np.log(np.exp(z - z.max()).sum()))

    tokens, logprobs, all_rows = [], [], []
    for _ in range(GREEDY):
        z = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float64)
        t = int(z.argmax())
        tokens.append(t)
        logprobs.append(logprob(np.where(used, z, -np.inf), t))
        all_rows.append(logprob(z, t))
        llm.eval([t])
    return {"prompt": PROMPT, "prompt_ids": ids, "greedy": tokens, "logprobs": logprobs,
            "logprobs_all_rows": all_rows}


def token_types(path):
    f = gguf.GGUFReader(path, "r").get_field(gguf.Keys.Tokenizer.TOKEN_TYPE)
    return [int(f.parts[i][0]) for i in f.data]


def main():
    text = json.load(open(os.path.join(GOLDEN, "bloom.json")))["text"]
    with tempfile.TemporaryDirectory() as tmp:
        path = variant(tmp, "bloom-q8_0-bos.gguf", [gguf.Keys.Tokenizer.ADD_BOS])
        eos = variant(tmp, "bloom-q8_0-bos-eos.gguf",
                      [gguf.Keys.Tokenizer.ADD_BOS, gguf.Keys.Tokenizer.ADD_EOS])
        text_file = os.path.join(tmp, "text.txt")
        with open(text_file, "w") as f:
            f.write(text)
        ids, eos_ids = (ast.literal_eval(run("llama-tokenize", "-m", p, "-f", text_file, "--ids",
                                             "--log-disable").stdout.strip())
                        for p in (path, eos))
        ppl = perplexity(path, text_file)
        version = run("llama-perplexity", "--version")
        res = {"llama_ids": ids, "length": LENGTH, "ppl": ppl,
               "llama": (version.stdout + version.stderr).strip().splitlines()[0],
               **greedy(path), "eos_llama_ids": eos_ids}
    with open(os.path.join(GOLDEN, "bloom-bos.json"), "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
