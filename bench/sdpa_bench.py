#!/usr/bin/env python3
"""PyTorch's scaled_dot_product_attention with an additive ALiBi bias, timed for bench_attention.

This is how most users get ALiBi today: the bias is materialised as an (NH, T, T) tensor, with
the causal mask folded in as -inf, and passed as attn_mask. The tensor is built once per T
(outside the timing), as a training loop would cache it; it costs NH*T*T*4 bytes (128 MiB at
NH 8, T 2048).

  python3 bench/sdpa_bench.py --T 1024 2048 --threads 2 1 [--heads 8] [--head-size 64]
                              [--min-seconds 1] [--causal-reference]

Prints one line per (T, threads):
  sdpa T <T> threads <n> fwd_s <seconds> fb_s <seconds>
and with --causal-reference also a line "sdpa_causal ..." for is_causal=True without any bias:
not ALiBi, only a reference for how fast SDPA is when it may skip the masked half.
fwd_s is a forward under torch.no_grad(); fb_s is forward + backward (dq, dk, dv) for a random
normal dout. Both are the best of repeated calls over --min-seconds, the same
rule bench_attention uses for its fused kernel. Inputs are (B=1, NH, T, HS) fp32, contiguous.
"""
import argparse
import math
import time

import torch
import torch.nn.functional as F


def alibi_slopes(nh):
    # The same slopes bench_attention uses: 2^(-8 h / NH), h = 1..NH.
    return torch.tensor([2.0 ** (-8.0 * (h + 1) / nh) for h in range(nh)])


def alibi_mask(nh, t):
    """(1, NH, T, T) additive mask: -m_h * (i - j) for j <= i, -inf above the diagonal."""
    i = torch.arange(t).view(t, 1)
    j = torch.arange(t).view(1, t)
    d = (i - j).float()
    bias = -alibi_slopes(nh).view(nh, 1, 1) * d
    return bias.masked_fill(j > i, float("-inf")).unsqueeze(0).contiguous()


def best_time(fn, min_seconds):
    best, total = math.inf, 0.0
    while True:
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best, total = min(best, dt), total + dt
        if total >= min_seconds:
            return best


def self_check(nh, hs):
    """The mask gives causal ALiBi attention: compare against an explicit softmax at T=64."""
    t = 64
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, nh, t, hs, generator=g) for _ in range(3))
    mask = alibi_mask(nh, t)
    ref = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hs) + mask, dim=-1) @ v
    got = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    err = (got - ref).abs().max().item()
    assert err < 1e-4, f"sdpa with the ALiBi mask differs from the explicit softmax by {err}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--T", type=int, nargs="+", default=[1024, 2048])
    ap.add_argument("--threads", type=int, nargs="+", default=[torch.get_num_threads()])
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--head-size", type=int, default=64)
    ap.add_argument("--min-seconds", type=float, default=1.0)
    ap.add_argument("--causal-reference", action="store_true")
    a = ap.parse_args()

    self_check(a.heads, a.head_size)
    for t in a.T:
        g = torch.Generator().manual_seed(1234)
        q, k, v, dout = (torch.randn(1, a.heads, t, a.head_size, generator=g) for _ in range(4))
        mask = alibi_mask(a.heads, t)
        qg, kg, vg = (x.clone().requires_grad_(True) for x in (q, k, v))

        variants = {"sdpa": dict(attn_mask=mask)}
        if a.causal_reference:
            variants["sdpa_causal"] = dict(is_causal=True)
        for n in a.threads:
            torch.set_num_threads(n)
            for name, kw in variants.items():

                def fwd():
                    with torch.no_grad():
                        F.scaled_dot_product_attention(q, k, v, **kw)

                def fb():
                    for x in (qg, kg, vg):
                        x.grad = None
                    F.scaled_dot_product_attention(qg, kg, vg, **kw).backward(dout)

                fwd(), fb()  # warm up allocator and thread pool
                tf = best_time(fwd, a.min_seconds)
                tb = best_time(fb, a.min_seconds)
                print(f"{name} T {t} threads {n} fwd_s {tf:.6f} fb_s {tb:.6f}", flush=True)


if __name__ == "__main__":
    main()
