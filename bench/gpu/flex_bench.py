#!/usr/bin/env python3
"""The baselines of bench/gpu/run.sh: causal ALiBi attention in bf16 on the GPU, B=1, timed
forward and forward+backward in the same shapes as bench_device_attention.

  - FlexAttention (torch.nn.attention.flex_attention, compiled) with an ALiBi score_mod and a
    causal block mask;
  - SDPA with the ALiBi bias materialised as an (NH, T, T) attn_mask (causal -inf folded in);
  - FlashAttention-2's alibi_slopes, if flash_attn imports.

  python3 bench/gpu/flex_bench.py [--heads 16] [--hs 64,128] [--lengths 1024,...,16384]

Prints "base NAME T t HS h fwd_ms f fb_ms b" per cell, or "skip NAME: why". A comparison
benchmark only: the product never needs Python.
"""
import argparse
import time

import torch


def best_ms(fn, seconds=1.0):
    fn()
    torch.cuda.synchronize()
    best, t_end = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best * 1e3


def slopes(nh):
    return torch.tensor([2.0 ** (-8.0 * (h + 1) / nh) for h in range(nh)], device="cuda")


def timed(name, T, HS, fwd):
    """fwd(q, k, v) -> out; times it and its backward."""
    try:
        nh = ARGS.heads
        q, k, v = (torch.randn(1, nh, T, HS, device="cuda", dtype=torch.bfloat16,
                               requires_grad=True) for _ in range(3))
        dout = torch.randn(1, nh, T, HS, device="cuda", dtype=torch.bfloat16)
        f_ms = best_ms(lambda: fwd(q, k, v))
        b_ms = best_ms(lambda: torch.autograd.grad(fwd(q, k, v), (q, k, v), dout))
        print(f"base {name} T {T} HS {HS} fwd_ms {f_ms:.3f} fb_ms {b_ms:.3f}", flush=True)
    except Exception as e:  # out of memory at long T for SDPA, a missing kernel, ...
        print(f"skip {name} T {T} HS {HS}: {type(e).__name__}: {str(e).splitlines()[0][:120]}",
              flush=True)
        torch.cuda.empty_cache()


def main():
    nh = ARGS.heads
    m = slopes(nh)
    try:
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention
        flex = torch.compile(flex_attention)
    except Exception as e:
        flex = None
        print(f"skip flex: {e}")
    try:
        from flash_attn import flash_attn_func
    except Exception as e:
        flash_attn_func = None
        print(f"skip flash_attn: {e}")
    for HS in [int(x) for x in ARGS.hs.split(",")]:
        for T in [int(x) for x in ARGS.lengths.split(",")]:
            if flex is not None:
                def score_mod(score, b, h, q_idx, kv_idx):
                    return score - m[h] * (q_idx - kv_idx)
                block = create_block_mask(lambda b, h, q, kv: q >= kv, None, None, T, T)
                timed("flex", T, HS,
                      lambda q, k, v: flex(q, k, v, score_mod=score_mod, block_mask=block))
            i = torch.arange(T, device="cuda")
            d = (i.view(T, 1) - i.view(1, T)).float()
            try:
                mask = (-m.view(nh, 1, 1) * d).masked_fill(d < 0, float("-inf"))
                mask = mask.to(torch.bfloat16).unsqueeze(0)
                sdpa = torch.nn.functional.scaled_dot_product_attention
                timed("sdpa", T, HS, lambda q, k, v: sdpa(q, k, v, attn_mask=mask))
                del mask
            except torch.OutOfMemoryError:
                print(f"skip sdpa T {T} HS {HS}: the (NH, T, T) bias does not fit")
            if flash_attn_func is not None:
                timed("flash2", T, HS, lambda q, k, v: flash_attn_func(
                    q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), causal=True,
                    alibi_slopes=m.float()).transpose(1, 2))
            torch.cuda.empty_cache()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--hs", default="64,128")
    ap.add_argument("--lengths", default="1024,2048,4096,8192,16384")
    ARGS = ap.parse_args()
    main()
