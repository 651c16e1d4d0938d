"""The score biases after ALiBi, for the PyTorch twin (twin.py): KERPLE (log and power), Sandwich
and FIRE, written out from their papers' formulas as (NH,T,T) tensors per layer, with their
parameters under the C++ names (src/position/kerple.cpp, sandwich.cpp, fire.cpp):

  kerple-log    b = -r1 log(1 + r2 |i - j|)          kerple_r1, kerple_r2 (L,NH)
  kerple-power  b = -r1 |i - j|^r2                   kerple_r1, kerple_r2 (L,NH), r2 <= 2
  sandwich      b = (sum_k cos(|i - j| / 10000^(2k/d')) - d'/2) / (8 h / H)     no parameters
  fire          b = mlp(psi(|i - j|) / (psi(max(thr, i)) + 1e-6)),  psi(t) = log(|c| t + 1),
                thr = |lmult fire_length|; fire_w1, fire_b1 (L,W), fire_w2 (L,NH,W),
                fire_b2 (L,NH), fire_c, fire_lmult (L)

KERPLE's r1, r2 are clamped to [0.01, ...) (r2 <= 2 for power) after every optimizer step
(project), as KERPLE's reference clamps them before each use.
"""

from __future__ import annotations

import math

import torch
from torch import nn

KERPLE_MIN = 0.01
KERPLE_MAX_POWER = 2.0
FIRE_EPS = 1e-6
METHODS = ("kerple-log", "kerple-power", "sandwich", "fire")


def add_params(model: nn.Module, cfg, dtype: torch.dtype) -> None:
    """The method's parameters, zero (the golden script loads its own values)."""
    L, NH, W = cfg.layers, cfg.heads, cfg.fire_width
    shapes = {}
    if cfg.pos in ("kerple-log", "kerple-power"):
        shapes = {"kerple_r1": (L, NH), "kerple_r2": (L, NH)}
    if cfg.pos == "fire":
        shapes = {"fire_w1": (L, W), "fire_b1": (L, W), "fire_w2": (L, NH, W),
                  "fire_b2": (L, NH), "fire_c": (L,), "fire_lmult": (L,)}
    for name, shape in shapes.items():
        setattr(model, name, nn.Parameter(torch.zeros(shape, dtype=dtype)))


def project(model: nn.Module, cfg) -> None:
    """KERPLE's clamp, in place (after init and after each optimizer step)."""
    if cfg.pos not in ("kerple-log", "kerple-power"):
        return
    with torch.no_grad():
        model.kerple_r1.clamp_(min=KERPLE_MIN)
        hi = KERPLE_MAX_POWER if cfg.pos == "kerple-power" else None
        model.kerple_r2.clamp_(min=KERPLE_MIN, max=hi)


def score_bias(model: nn.Module, cfg, T: int, layer: int, dtype: torch.dtype) -> torch.Tensor:
    """(NH,T,T): the bias of query i (row) and key j (column) at layer `layer`."""
    dev = model.wte.device
    pos = torch.arange(T, device=dev, dtype=dtype)
    d = (pos[:, None] - pos[None, :]).abs()  # (T,T) |i - j|
    if cfg.pos == "kerple-log":
        r1, r2 = model.kerple_r1[layer], model.kerple_r2[layer]  # (NH)
        return -r1[:, None, None] * torch.log1p(r2[:, None, None] * d)
    if cfg.pos == "kerple-power":
        r1, r2 = model.kerple_r1[layer], model.kerple_r2[layer]
        # d^r2 with 0^r2 = 0 and a zero gradient there (d > 0 elsewhere)
        safe = torch.where(d > 0, d, torch.ones_like(d))
        p = torch.where(d > 0, safe[None] ** r2[:, None, None], torch.zeros_like(d)[None])
        return -r1[:, None, None] * p
    if cfg.pos == "sandwich":
        half = cfg.sandwich_dim // 2
        k = torch.arange(1, half + 1, device=dev, dtype=torch.float64)
        inv = 10000.0 ** (-2.0 * k / cfg.sandwich_dim)  # (half)
        s = torch.cos(d.to(torch.float64)[..., None] * inv).sum(-1) - half  # (T,T)
        h = torch.arange(1, cfg.heads + 1, device=dev, dtype=torch.float64)
        return (s[None] * cfg.heads / (8.0 * h[:, None, None])).to(dtype)
    if cfg.pos == "fire":
        c = model.fire_c[layer].abs()
        thr = (model.fire_lmult[layer] * cfg.fire_length).abs()
        psi_d = torch.log1p(c * d)  # (T,T)
        norm = torch.log1p(c * torch.maximum(pos, thr)) + FIRE_EPS  # (T) per query
        x = psi_d / norm[:, None]  # (T,T)
        w1, b1 = model.fire_w1[layer], model.fire_b1[layer]  # (W)
        hid = torch.relu(x[..., None] * w1 + b1)  # (T,T,W)
        out = hid @ model.fire_w2[layer].T + model.fire_b2[layer]  # (T,T,NH)
        return out.permute(2, 0, 1)
    raise ValueError(f"not a method of this module: {cfg.pos}")


def random_values(name: str, shape, g: torch.Generator) -> torch.Tensor | None:
    """Golden files' initial values, in each parameter's domain, off the trainer's init so that
    every gradient path carries signal; None for a name this module does not own."""
    noise = torch.randn(shape, generator=g, dtype=torch.float32)
    if name == "kerple_r1":
        return 0.2 + 0.5 * noise.abs()
    if name == "kerple_r2":
        v = 0.1 + 0.4 * noise.abs()
        v[0] = 0.0102  # layer 0 just above the clamp: some steps push it below
        return v
    if name in ("fire_w1",):
        return noise
    if name == "fire_b1":
        return 0.3 * noise
    if name in ("fire_w2", "fire_b2"):
        return 0.5 * noise
    if name == "fire_c":
        return 0.3 + 0.1 * noise
    if name == "fire_lmult":
        return 1.0 + 0.1 * noise
    return None


def fire_knots_in_range(model: nn.Module, layer: int) -> int:
    """Hidden units of `layer` that turn on or off at some x in (0, 1): the segments a golden
    case exercises."""
    w1, b1 = model.fire_w1[layer].detach(), model.fire_b1[layer].detach()
    t = -b1 / torch.where(w1 == 0, torch.full_like(w1, math.inf), w1)
    return int(((t > 0) & (t < 1)).sum())
