#!/usr/bin/env bash
# Builds llama.cpp, the reference of docs/gguf.md, from PyPI's llama-cpp-python sdist (which vendors
# llama.cpp, its convert_hf_to_gguf.py and gguf-py), outside the repository. Never a dependency of
# alibi: only the comparison benchmarks and the scripts of tests/ref/ use what it builds.
#
#   bash bench/llama_build.sh DIR [VERSION]     # DIR e.g. /work/llama-build; VERSION 0.3.36
#
# Leaves:
#   DIR/src/vendor/llama.cpp           llama.cpp's source (convert_hf_to_gguf.py, gguf-py)
#   DIR/build/bin/llama-{bench,quantize,perplexity,tokenize} and libllama.so, libggml*.so
#   DIR/py                             a venv (--system-site-packages) with gguf-py installed
# llama-cpp-python's bindings run on that library with
#   PYTHONPATH=DIR/src LLAMA_CPP_LIB_PATH=DIR/build/bin DIR/py/bin/python ...
set -euo pipefail
DIR=${1:?usage: llama_build.sh DIR [VERSION]}
VERSION=${2:-0.3.36}
PY=${PYTHON:-/work/venv/bin/python}
mkdir -p "$DIR"
cd "$DIR"
if [ ! -d src ]; then
  "$PY" -m pip download --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d sdist
  tar xzf "sdist/llama_cpp_python-$VERSION.tar.gz"
  mv "llama_cpp_python-$VERSION" src
fi
if [ ! -x py/bin/python ]; then
  "$PY" -m venv --system-site-packages py
  py/bin/pip install --no-deps ./src/vendor/llama.cpp/gguf-py
fi
# Native: the same instructions (AVX-512, VNNI, BF16) alibi's kernels use on this CPU. Shared
# libraries, so that llama-cpp-python's ctypes bindings load this very build.
cmake -S src/vendor/llama.cpp -B build -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
  -DBUILD_SHARED_LIBS=ON -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF \
  -DLLAMA_OPENSSL=OFF -G "Unix Makefiles" >/dev/null
nice make -C build -j"${JOBS:-2}" llama-bench llama-quantize llama-perplexity llama-tokenize llama
ls -l build/bin
