"""llama.cpp's convert_hf_to_gguf.py on a folder whose tokenizer it does not recognise (the test
tokenizer of bench/hf_bench.py's model): its BPE pre-tokenizer is declared to be BLOOM's, which
changes nothing about the weights, so that llama.cpp's decoding speed can be compared on them.

    python3 bench/gguf_convert.py LLAMA_CPP_DIR HF_DIR --outtype bf16 --outfile OUT.gguf

LLAMA_CPP_DIR: llama.cpp's source (e.g. vendor/llama.cpp of PyPI's llama-cpp-python sdist), with
its gguf-py installed (pip install LLAMA_CPP_DIR/gguf-py). Every argument after it goes to the
converter.
"""
import sys

sys.path.insert(0, sys.argv[1])
sys.argv = ["convert_hf_to_gguf.py"] + sys.argv[2:]
import convert_hf_to_gguf  # noqa: E402
from conversion.base import TextModel  # noqa: E402

TextModel.get_vocab_base_pre = lambda self, tokenizer: "bloom"
convert_hf_to_gguf.main()
