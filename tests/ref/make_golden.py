"""Writes the golden files tests/golden/<case>.safetensors that tests/test_golden.cpp checks.

    python3 tests/ref/make_golden.py            # from the repo root; rewrites every case
    python3 tests/ref/make_golden.py --check    # also reload each file and print a summary

Each file holds, for one tiny model (docs/model.md):
  metadata  "config" (JSON: the twin's Config, keys as C++ ModelConfig's) and "train" (JSON: lr,
            warmup, steps, min_lr_ratio, beta1, beta2, eps, weight_decay, clip)
  <name>            F32   the initial parameters, under their docs/model.md names
  input.tokens      I32   (B,T)
  input.targets     I32   (B,T)
  out.logits        F32   (B,T,V)
  out.loss          F32   (1)
  grad.<name>       F32   d loss / d <name> at the initial parameters
  train.batches     I32   (steps,B,T+1): step s trains on [:, :T] -> targets [:, 1:] of batch s
  train.losses      F32   (steps): the loss of each step, before that step's AdamW update
  train.grad_norms  F32   (steps): the global gradient norm of each step, before clipping
  t5.buckets        I32   (t5_max_distance) bucket(d), d = 0..max_distance-1, with the
                          buckets of one direction (half of them if bidirectional) (t5 only)
  alibi.slopes      F32   (NH)                                                   (alibi only)

The initial parameters are random (seeded) and deliberately far from the trainer's init:
LayerNorm weights 1 + noise, every bias and t5_bias nonzero, so that every gradient path carries
signal. They are stored in fp32; everything else is computed in float64 from those fp32 values
(converted up) and stored rounded to fp32.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import twin_bias  # noqa: E402
from twin import Config, TrainConfig, Twin, alibi_slopes, make_optimizer, t5_bucket_table, train_step  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT_DIR = os.path.join(REPO, "tests", "golden")

B, T = 3, 20
TINY = dict(vocab=64, layers=2, d_model=48, heads=6, ffn=96)  # NH=6: not a power of two, HS=8

CASES = {
    "none": Config(**TINY, pos="none"),
    "alibi": Config(**TINY, pos="alibi"),
    "sinusoidal": Config(**TINY, pos="sinusoidal"),
    "learned": Config(**TINY, pos="learned", max_positions=T),
    "rotary": Config(**TINY, pos="rotary"),
    # 8 buckets, max distance 16: T=20 covers the exact region (d<4), the log region (4..15)
    # and saturation (d>=16 -> bucket 7).
    "t5": Config(**TINY, pos="t5", t5_buckets=8, t5_max_distance=16),
    "alibi_nh8": Config(**{**TINY, "d_model": 64, "heads": 8}, pos="alibi"),
    # Trainable slopes (alibi_theta starts random here, so the sigmoid is off its midpoint) and
    # bidirectional attention (encoders): alibi -m|i - j|; t5 with 4 buckets per direction.
    "alibi_trainable": Config(**TINY, pos="alibi", slopes="trainable"),
    "alibi_bidirectional": Config(**TINY, pos="alibi", causal=False, slopes="trainable"),
    "t5_bidirectional": Config(**TINY, pos="t5", t5_buckets=8, t5_max_distance=16, causal=False),
    "rotary_bidirectional": Config(**TINY, pos="rotary", causal=False),
    # (New cases go last: each case's seed is its index here.)
    # gamma 16, not torchscale's 512: over T = 20 the scales then reach zeta_0^(+-10/16) (x0.46 to
    # x2.2) instead of +-2.5%, so every term of the decay moves the logits well past tolerance.
    "xpos": Config(**TINY, pos="xpos", xpos_scale_base=16.0),
    # Context extension (docs/rope-family.md). yarn's L = 256 puts its ramp over pairs 0..2 of
    # HS = 8 (pair 1 half interpolated); alibi's L = 8 < T = 20 scales the (trainable) slopes by
    # 8/20, so the gradient through the scale is checked too.
    "rotary_pi": Config(**TINY, pos="rotary", rope_scaling="pi", rope_factor=2.5),
    "rotary_ntk": Config(**TINY, pos="rotary", rope_scaling="ntk", rope_factor=4.0),
    "rotary_yarn": Config(**TINY, pos="rotary", rope_scaling="yarn", rope_factor=4.0, train_len=256),
    "alibi_interpolate": Config(**TINY, pos="alibi", slopes="trainable", alibi_interpolate=True,
                                train_len=8),
    # The methods after ALiBi (twin_bias.py). sandwich_dim 16: T=20 spans several periods of its
    # fastest cosines. fire_length 8: rows 8..19 are normalised by their own position, rows
    # 0..7 by the threshold (whose gradient reaches lmult).
    "kerple_log": Config(**TINY, pos="kerple-log"),
    "kerple_power": Config(**TINY, pos="kerple-power"),
    "sandwich": Config(**TINY, pos="sandwich", sandwich_dim=16),
    "fire": Config(**TINY, pos="fire", fire_width=8, fire_length=8),
    "kerple_log_bidirectional": Config(**TINY, pos="kerple-log", causal=False),
    "fire_bidirectional": Config(**TINY, pos="fire", causal=False, fire_width=8, fire_length=8),
}

# lr 1e-2 moves the loss visibly in 10 steps. clip 1.2 (not the default 1.0, which nearly every step of
# these inits would exceed): the gradient norm starts at 1.4-2.3 and falls to 0.8-1.1, so clipping
# triggers on the early steps (0 to 6 or so, per case) and is a no-op on later ones; both branches
# are exercised. make_golden prints the clipped steps and asserts the mix.
TRAIN = TrainConfig(lr=1e-2, warmup=3, steps=10, min_lr_ratio=0.1, beta1=0.9, beta2=0.95,
                    eps=1e-8, weight_decay=0.1, clip=1.2)

SEED = 1234


def random_params(model: Twin, seed: int) -> dict[str, torch.Tensor]:
    """fp32 initial parameters with non-trivial values everywhere."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, p in model.named_parameters():
        own = twin_bias.random_values(name, p.shape, g)
        if own is not None:
            out[name] = own.contiguous()
            continue
        noise = torch.randn(p.shape, generator=g, dtype=torch.float32)
        if name.endswith(("ln1.w", "ln2.w")) or name == "lnf.w":
            v = 1.0 + 0.1 * noise
        elif name.endswith(".b"):
            v = 0.05 * noise
        elif name in ("t5_bias", "alibi_theta"):
            v = 0.5 * noise
        else:  # wte, wpe, Linear weights
            v = 0.1 * noise
        out[name] = v.contiguous()
    return out


def load_into(model: Twin, params: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(params[name].to(p.dtype))


def make_case(name: str, cfg: Config, seed: int) -> tuple[dict, dict, list[float]]:
    f64 = torch.float64
    model = Twin(cfg, f64)
    params = random_params(model, seed)
    load_into(model, params)
    g = torch.Generator().manual_seed(seed + 1)

    tensors: dict[str, torch.Tensor] = dict(params)

    # Forward and backward at the initial parameters.
    tokens = torch.randint(0, cfg.vocab, (B, T), generator=g, dtype=torch.int32)
    targets = torch.randint(0, cfg.vocab, (B, T), generator=g, dtype=torch.int32)
    logits, loss = model(tokens, targets)
    model.zero_grad(set_to_none=False)
    loss.backward()
    tensors["input.tokens"] = tokens
    tensors["input.targets"] = targets
    tensors["out.logits"] = logits.detach().to(torch.float32)
    tensors["out.loss"] = loss.detach().reshape(1).to(torch.float32)
    for pname, p in model.named_parameters():
        tensors[f"grad.{pname}"] = p.grad.to(torch.float32)

    # TRAIN.steps of training from the same initial parameters, in float64.
    model = Twin(cfg, f64)
    load_into(model, params)
    opt = make_optimizer(model, TRAIN)
    batches = torch.randint(0, cfg.vocab, (TRAIN.steps, B, T + 1), generator=g, dtype=torch.int32)
    losses, norms, clamped = [], [], 0
    for s in range(TRAIN.steps):
        loss_s, norm_s = train_step(model, opt, batches[s, :, :T], batches[s, :, 1:], s, TRAIN)
        losses.append(loss_s)
        norms.append(norm_s)
        if cfg.pos.startswith("kerple"):
            clamped += int((model.kerple_r2 == twin_bias.KERPLE_MIN).sum())
    if cfg.pos.startswith("kerple"):
        assert clamped > 0, f"{name}: no step clamped kerple_r2; the projection is untested"
        print(f"  {name}: kerple_r2 at the clamp {clamped} times over {TRAIN.steps} steps")
    if cfg.pos == "fire":
        inside = [twin_bias.fire_knots_in_range(model, l) for l in range(cfg.layers)]
        assert min(inside) > 0, f"{name}: a layer without a knot in (0, 1): {inside}"
        print(f"  {name}: knots in (0, 1) per layer {inside}")
    tensors["train.batches"] = batches
    tensors["train.losses"] = torch.tensor(losses, dtype=torch.float32)
    tensors["train.grad_norms"] = torch.tensor(norms, dtype=torch.float32)

    if cfg.pos == "t5":
        half = cfg.t5_buckets if cfg.causal else cfg.t5_buckets // 2  # per direction
        tensors["t5.buckets"] = t5_bucket_table(half, cfg.t5_max_distance)
    if cfg.pos == "alibi":
        tensors["alibi.slopes"] = torch.tensor(alibi_slopes(cfg.heads), dtype=torch.float32)

    clipped = [n > TRAIN.clip for n in norms]
    assert any(clipped) and not all(clipped), (
        f"{name}: clip {TRAIN.clip} should trigger on some steps only; norms {norms}")

    metadata = {
        "config": json.dumps(cfg.to_dict()),
        "train": json.dumps(TRAIN.to_dict()),
        "generator": "tests/ref/make_golden.py",
    }
    return {k: v.contiguous() for k, v in tensors.items()}, metadata, norms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=OUT_DIR)
    ap.add_argument("--check", action="store_true", help="reload every file and summarise it")
    ap.add_argument("cases", nargs="*", default=list(CASES), help=f"subset of {list(CASES)}")
    a = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    os.makedirs(a.out, exist_ok=True)
    for name in a.cases:
        cfg = CASES[name]
        tensors, metadata, norms = make_case(name, cfg, SEED + 100 * list(CASES).index(name))
        path = os.path.join(a.out, f"{name}.safetensors")
        save_file(tensors, path, metadata=metadata)
        losses = tensors["train.losses"].tolist()
        print(f"{name:11s} {os.path.getsize(path) / 1024:6.1f} KiB  loss {tensors['out.loss'].item():.4f}"
              f"  train {losses[0]:.4f} -> {losses[-1]:.4f}"
              f"  clipped at steps {[s for s, n in enumerate(norms) if n > TRAIN.clip]}")
        if a.check:
            back = load_file(path)
            assert set(back) == set(tensors), f"{path}: names differ after reload"
            for k, v in tensors.items():
                assert back[k].dtype == v.dtype and torch.equal(back[k], v), f"{path}: {k} differs"
            print(f"  reloaded {len(back)} tensors; grad norms {[round(n, 3) for n in norms]}")


if __name__ == "__main__":
    main()
