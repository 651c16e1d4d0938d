"""llama.cpp's convert_hf_to_gguf.py on a folder whose tokenizer it does not recognise: the
converter names a BPE pre-tokenizer by hashing a known text's ids and refuses a tokenizer it
has not seen. --pre NAME declares the split instead ("bloom" by default: the test tokenizer of
bench/hf_bench.py's model; "gpt-2" for a byte-level BPE that `alibi prepare --tokenizer bytebpe`
trained). It changes nothing about the weights.

    python3 bench/gguf_convert.py LLAMA_CPP_DIR HF_DIR [--pre NAME] --outtype bf16 --outfile OUT.gguf

LLAMA_CPP_DIR: llama.cpp's source (e.g. vendor/llama.cpp of PyPI's llama-cpp-python sdist), with
its gguf-py installed or on PYTHONPATH. Every other argument goes to the converter.
"""
import sys

args = sys.argv[2:]
pre = "bloom"
if "--pre" in args:
    i = args.index("--pre")
    pre = args[i + 1]
    del args[i:i + 2]
sys.path.insert(0, sys.argv[1])
sys.argv = ["convert_hf_to_gguf.py"] + args
import convert_hf_to_gguf  # noqa: E402
from conversion.base import TextModel  # noqa: E402

TextModel.get_vocab_base_pre = lambda self, tokenizer: pre
convert_hf_to_gguf.main()
