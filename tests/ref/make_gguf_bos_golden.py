"""Writes tests/golden/gguf/bloom-bos.json: what llama.cpp does with a GGUF whose
tokenizer.ggml.add_bos_token is true (test_gguf_import.cpp, GgufVariant.AddBosToken...).

    bash bench/llama_build.sh /work/llama-build      # llama.cpp from PyPI's llama-cpp-python sdist
    LLAMA=/work/llama-build /work/venv/bin/python tests/ref/make_gguf_bos_golden.py

The file: tests/golden/gguf/bloom-q8_0.gguf copied by gguf-py (the sdist's) with
tokenizer.ggml.add_bos_token = true added, nothing else changed (its bos_token_id is the
converter's). On it, for bloom.json's text:
  "llama_ids"         llama-tokenize --ids: the text's ids with llama.cpp's special tokens (BOS first)
  "length", "ppl"     llama-perplexity -c LENGTH -b LENGTH -t 2: its Final estimate, which puts BOS
                      at every chunk's start
  "llama"             the llama.cpp build's version string (llama-perplexity --version)
"""
import ast
import json
import os
import re
import subprocess
import sys
import tempfile

LLAMA = os.environ["LLAMA"]
sys.path[:0] = [os.path.join(LLAMA, "src", "vendor", "llama.cpp", "gguf-py")]

import gguf  # noqa: E402
from gguf.scripts.gguf_new_metadata import MetadataDetails, copy_with_new_metadata  # noqa: E402

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "golden", "gguf")
BIN = os.path.join(LLAMA, "build", "bin")
LENGTH = 16


def run(*args):
    env = dict(os.environ, LD_LIBRARY_PATH=BIN)
    return subprocess.run([os.path.join(BIN, args[0]), *args[1:]], capture_output=True,
                          text=True, env=env, check=True)


def main():
    text = json.load(open(os.path.join(GOLDEN, "bloom.json")))["text"]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bloom-q8_0-bos.gguf")
        reader = gguf.GGUFReader(os.path.join(GOLDEN, "bloom-q8_0.gguf"), "r")
        arch = reader.get_field(gguf.Keys.General.ARCHITECTURE).contents()
        writer = gguf.GGUFWriter(path, arch=arch, endianess=reader.endianess)
        copy_with_new_metadata(reader, writer, {
            gguf.Keys.Tokenizer.ADD_BOS: MetadataDetails(gguf.GGUFValueType.BOOL, True)}, [])
        text_file = os.path.join(tmp, "text.txt")
        with open(text_file, "w") as f:
            f.write(text)
        ids = ast.literal_eval(run("llama-tokenize", "-m", path, "-f", text_file, "--ids",
                                   "--log-disable").stdout.strip())
        out = run("llama-perplexity", "-m", path, "-f", text_file, "-c", str(LENGTH), "-b",
                  str(LENGTH), "-t", "2")
        ppl = float(re.search(r"Final estimate: PPL = ([0-9.]+)", out.stdout + out.stderr)[1])
        version = run("llama-perplexity", "--version")
        res = {"llama_ids": ids, "length": LENGTH, "ppl": ppl,
               "llama": (version.stdout + version.stderr).strip().splitlines()[0]}
    with open(os.path.join(GOLDEN, "bloom-bos.json"), "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
