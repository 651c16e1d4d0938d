"""Goldens for GGUF's block formats: tests/golden/gguf/blocks.gguf, written by gguf-py (the
`gguf` package that llama.cpp vendors and PyPI ships), whose numpy quantize/dequantize are the
reference alibi's kernels/quant.cpp is checked against bit for bit (tests/test_gguf.cpp), and, for
the K types, which gguf-py cannot quantize, ggml's own quantisers from the llama.cpp build of
bench/llama_build.sh (libggml-base's ggml_quantize_chunk, without an importance matrix: what
llama-quantize runs).

    LLAMA=/work/llama-build PYTHONPATH=/work/llama-build/src/vendor/llama.cpp/gguf-py \
        /work/venv/bin/python tests/ref/make_gguf_blocks.py

For each type T of F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K, two rows of
512 elements:
  T.src  F32: the values quantized (normals, plus blocks that are all zero, constant, one spike,
         tiny, and with the largest magnitude negative), for the types gguf-py quantizes;
  T      the stored bytes: gguf-py's quantize(T.src), or for the K types random bytes with
         finite f16 scales (every bit pattern a block may hold);
  T.deq  F32: gguf-py's dequantize(T).
and for the K types, eight rows of 512 (the two rows above, a super-block of zeros, heavy tails,
all positive, all negative, mixed magnitudes; drawn from their own seed):
  T.ksrc F32: the values;
  T.ggml the bytes ggml_quantize_chunk makes of them.
"""
import ctypes
import os
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q
from gguf import quants

OUT = os.path.join(os.path.dirname(__file__), "..", "golden", "gguf", "blocks.gguf")
ROWS, COLS = 2, 512
TYPES = ["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K"]
K_TYPES = {"Q4_K", "Q5_K", "Q6_K"}


def source(rng):
    x = rng.standard_normal((ROWS, COLS)).astype(np.float32)
    x[0, 0:32] = 0.0                        # an all-zero block
    x[0, 32:64] = 0.75                      # constant
    x[0, 64:96] = 0.0
    x[0, 70] = 3.0                          # one spike
    x[0, 96:128] *= np.float32(1e-6)        # tiny
    x[0, 128:160] = np.abs(x[0, 128:160])
    x[0, 140] = -5.0                        # the largest magnitude negative
    x[1, :256] *= np.float32(1e3)           # large
    return x


def k_bytes(rng, qtype):
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    n = ROWS * COLS // block
    b = rng.integers(0, 256, size=(n, size), dtype=np.uint8)
    def f16(shape):
        return (rng.standard_normal(shape) * 0.01).astype(np.float16).view(np.uint8)
    if qtype == Q.Q6_K:
        b[:, 208:210] = f16((n, 1))
    else:                                    # d and dmin lead the block
        b[:, 0:2] = f16((n, 1))
        b[:, 2:4] = f16((n, 1))
    return b.reshape(ROWS, COLS // block * size)


def k_source(rng):
    x = np.concatenate([source(rng), rng.standard_normal((6, COLS)).astype(np.float32)])
    x[2, :256] = 0.0                                       # a super-block of zeros
    x[3] = rng.standard_t(2, COLS).astype(np.float32)      # heavy tails
    x[4] = np.abs(x[4]) + np.float32(0.5)                  # all positive: the min is 0
    x[5] = -np.abs(x[5])                                   # all negative
    x[6] *= np.repeat(np.float32(10.0) ** rng.integers(-3, 3, COLS // 16), 16).astype(np.float32)
    x[7, ::3] = 0.0
    return x


def ggml_quantize(x, qtype):
    lib = ctypes.CDLL(os.path.join(os.environ["LLAMA"], "build", "bin", "libggml-base.so"))
    f = lib.ggml_quantize_chunk
    f.restype = ctypes.c_size_t
    f.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                  ctypes.c_int64, ctypes.c_void_p]
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    out = np.zeros((x.shape[0], x.shape[1] // block * size), dtype=np.uint8)
    x = np.ascontiguousarray(x, dtype=np.float32)
    n = f(int(qtype), x.ctypes.data, out.ctypes.data, 0, x.shape[0], x.shape[1], None)
    assert n == out.size, (n, out.size)
    return out


def main():
    rng = np.random.default_rng(20261206)
    krng = np.random.default_rng(20261207)
    w = gguf.GGUFWriter(OUT, "blocks")
    for name in TYPES:
        qtype = Q[name]
        if name in K_TYPES:
            data = k_bytes(rng, qtype)
        else:
            src = source(rng)
            w.add_tensor(name + ".src", src)
            data = quants.quantize(src, qtype)
        deq = quants.dequantize(data, qtype).astype(np.float32)
        assert deq.shape == (ROWS, COLS) and np.all(np.isfinite(deq)), name
        w.add_tensor(name, data, raw_shape=data.shape, raw_dtype=qtype)
        w.add_tensor(name + ".deq", deq)
        if name in K_TYPES:
            src = k_source(krng)
            w.add_tensor(name + ".ksrc", src)
            data = ggml_quantize(src, qtype)
            w.add_tensor(name + ".ggml", data, raw_shape=data.shape, raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(OUT, os.path.getsize(OUT), "bytes")


if __name__ == "__main__":
    sys.exit(main())
