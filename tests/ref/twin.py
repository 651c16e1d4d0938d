"""PyTorch twin of docs/model.md: the reference the C++ model is tested against.

Everything here follows docs/model.md line by line and favours clarity over speed: attention
materialises its (T,T) scores, LayerNorm and GELU are written out. Parameter names are exactly
the safetensors names of the contract (`named_parameters()` yields `wte`, `h.0.ln1.w`, ...).

The dtype is a constructor argument: float64 for golden files (tests/ref/make_golden.py),
float32 when the twin serves as a speed baseline (`bench_train_step`, or
`python3 tests/ref/twin.py --pos alibi -B 8 -T 256`).

Fixed tables that the contract says are "computed in fp64, rounded to fp32" (sinusoidal PE,
rotary cos/sin, ALiBi slopes) are built exactly that way and then converted to the model dtype,
so a float64 twin sees the same numbers as the fp32 C++ model.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

import twin_bias

POS_METHODS = ("none", "alibi", "sinusoidal", "learned", "rotary", "xpos", "t5") + twin_bias.METHODS
LN_EPS = 1e-5  # docs/model.md: LayerNorm eps, biased variance
ROPE_BASE = 10000.0
SINUSOID_BASE = 10000.0
# docs/rope-family.md: xpos' zeta_i = (i / (HS/2) + 0.4) / 1.4 (torchscale's XPOS); YaRN's ramp
# between the pairs turning beta = 32 and alpha = 1 times over the training length, its minimum
# width, and its attention temperature sqrt(1/t) = 0.1 ln(s) + 1.
XPOS_ZETA_OFFSET = 0.4
YARN_ALPHA, YARN_BETA, YARN_MIN_RAMP, YARN_TEMPERATURE = 1.0, 32.0, 0.001, 0.1


@dataclass
class Config:
    """The metadata "config" of a checkpoint or golden file (keys as in C++ ModelConfig)."""

    vocab: int = 256  # V
    layers: int = 4  # L
    d_model: int = 256  # C
    heads: int = 8  # NH
    ffn: int = 1024  # F
    pos: str = "alibi"
    max_positions: int = 0  # learned: rows of wpe
    t5_buckets: int = 32
    t5_max_distance: int = 128
    causal: bool = True  # False: bidirectional attention (an encoder)
    slopes: str = "fixed"  # alibi: "trainable" learns m_h = 2 m0_h sigmoid(alibi_theta_h)
    sandwich_dim: int = 128  # sandwich: d'
    fire_width: int = 32  # fire: hidden units
    fire_length: int = 0  # fire: L of the threshold |lmult L|
    xpos_scale_base: float = 512.0  # xpos: gamma
    rope_scaling: str = "none"  # rotary: none | pi | ntk | yarn, by rope_factor s
    rope_factor: float = 1.0
    alibi_interpolate: bool = False  # alibi: slopes times train_len / T past train_len
    train_len: int = 0  # L of yarn and alibi_interpolate

    @property
    def head_size(self) -> int:
        return self.d_model // self.heads

    def validate(self) -> None:
        assert self.pos in POS_METHODS, f"pos '{self.pos}' is not one of {POS_METHODS}"
        assert self.d_model % self.heads == 0, f"d_model {self.d_model} % heads {self.heads} != 0"
        if self.pos in ("rotary", "xpos"):
            assert self.head_size % 2 == 0, f"{self.pos} needs an even head size, got {self.head_size}"
        assert self.rope_scaling == "none" or self.pos == "rotary", "rope_scaling is rotary's"
        if self.rope_scaling == "yarn" or self.alibi_interpolate:
            assert self.train_len > 0, "yarn and alibi_interpolate need train_len"
        if self.pos == "sinusoidal":
            assert self.d_model % 2 == 0, f"sinusoidal needs an even d_model, got {self.d_model}"
        if self.pos == "learned":
            assert self.max_positions > 0, "learned needs max_positions > 0"
        if self.pos == "fire":
            assert self.fire_length > 0, "fire needs fire_length > 0"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainConfig:
    """The metadata "train" of a golden file: AdamW, clipping and the warmup+cosine schedule."""

    lr: float = 3e-4
    warmup: int = 100
    steps: int = 1000
    min_lr_ratio: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    weight_decay: float = 0.1
    clip: float = 1.0

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------------------------
# Position methods: fixed tables and rules
# ---------------------------------------------------------------------------------------------


def alibi_slopes(n: int) -> list[float]:
    """Slopes m_h in head order (paper.md): 2^(-8h/n) for a power of two n; otherwise the
    c = 2^floor(log2 n) slopes, then the even-indexed slopes of the 2c set, first n - c."""

    def power_of_two(c: int) -> list[float]:
        return [2.0 ** (-8.0 * h / c) for h in range(1, c + 1)]

    c = 2 ** int(math.floor(math.log2(n)))
    if c == n:
        return power_of_two(n)
    return power_of_two(c) + power_of_two(2 * c)[0::2][: n - c]


def t5_bucket(d: torch.Tensor, num_buckets: int, max_distance: int) -> torch.Tensor:
    """Causal T5 bucket of distance d = i - j (negative distances clamp to 0), exactly as
    T5's reference `_relative_position_bucket(bidirectional=False)`: the log ratio in fp32,
    truncated toward zero, saturating at num_buckets - 1."""
    n = torch.clamp(d.to(torch.long), min=0)
    max_exact = num_buckets // 2
    is_small = n < max_exact
    # fp32 throughout, like T5: tf.log(tf.to_float(n) / max_exact) / math.log(...) * (...)
    val_if_large = max_exact + (
        torch.log(n.to(torch.float32) / max_exact)
        / math.log(max_distance / max_exact)
        * (num_buckets - max_exact)
    ).to(torch.long)
    val_if_large = torch.clamp(val_if_large, max=num_buckets - 1)
    return torch.where(is_small, n, val_if_large)


def t5_bucket_bidirectional(d: torch.Tensor, num_buckets: int, max_distance: int) -> torch.Tensor:
    """T5's `_relative_position_bucket(bidirectional=True)` for d = i - j: half the buckets per
    direction, keys after the query (d < 0) in the second half."""
    half = num_buckets // 2
    return (d < 0).to(torch.long) * half + t5_bucket(d.abs(), half, max_distance)


def t5_bucket_table(num_buckets: int, max_distance: int) -> torch.Tensor:
    """bucket(d) for d = 0..max_distance-1, int32 (what C++ t5_bucket_table returns)."""
    return t5_bucket(torch.arange(max_distance), num_buckets, max_distance).to(torch.int32)


def sinusoidal_table(T: int, C: int) -> torch.Tensor:
    """(T,C) fp32: PE[p,2i] = sin(p / 10000^(2i/C)), PE[p,2i+1] = cos(same); fp64 then rounded."""
    p = torch.arange(T, dtype=torch.float64)[:, None]  # (T,1)
    i2 = torch.arange(0, C, 2, dtype=torch.float64)[None, :]  # (1,C/2): the 2i
    angle = p / SINUSOID_BASE ** (i2 / C)  # (T,C/2)
    pe = torch.empty(T, C, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle)
    return pe.to(torch.float32)


def rope_frequencies(cfg: Config) -> tuple[torch.Tensor, float]:
    """The rotary family's (HS/2) float64 frequencies theta_i = b^(-2i/HS), scaled as
    cfg.rope_scaling says by s = cfg.rope_factor, and the factor on q and k (docs/rope-family.md):
    pi theta_i / s; ntk b -> b s^(HS/(HS-2)); yarn theta_i / s * ramp_i + theta_i (1 - ramp_i), the
    ramp linear in i between the pairs turning YARN_BETA and YARN_ALPHA times over train_len
    (rounded outwards), with the factor 0.1 ln(s) + 1."""
    HS, s = cfg.head_size, cfg.rope_factor
    i = torch.arange(HS // 2, dtype=torch.float64)
    base = ROPE_BASE * s ** (HS / (HS - 2)) if cfg.rope_scaling == "ntk" else ROPE_BASE
    freq = base ** (-2.0 * i / HS)
    mscale = 1.0
    if cfg.rope_scaling == "pi":
        freq = freq / s
    if cfg.rope_scaling == "yarn":
        def pair(rotations: float) -> float:  # the i with train_len theta_i = 2 pi rotations
            return HS * math.log(cfg.train_len / (rotations * 2 * math.pi)) / (2 * math.log(ROPE_BASE))
        low, high = max(math.floor(pair(YARN_BETA)), 0), min(math.ceil(pair(YARN_ALPHA)), HS - 1)
        if low == high:
            high += YARN_MIN_RAMP
        ramp = ((i - low) / (high - low)).clamp(0.0, 1.0)
        freq = freq / s * ramp + freq * (1.0 - ramp)
        if s > 1:
            mscale = YARN_TEMPERATURE * math.log(s) + 1.0
    return freq, mscale


def rotary_tables(cfg: Config, T: int) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """(cos, sin) of q and of k, each (T, HS/2) fp32: theta = p * freq_i, times the factor on q
    and k, and for xpos times zeta_i^(n / gamma) on q and zeta_i^(-n / gamma) on k, n = p - ceil(T/2)
    (torchscale centres the positions of a sequence); fp64 then rounded."""
    freq, mscale = rope_frequencies(cfg)
    p = torch.arange(T, dtype=torch.float64)[:, None]  # (T,1)
    theta = p * freq[None, :]  # (T,HS/2)
    q_scale = k_scale = torch.full_like(theta, mscale)
    if cfg.pos == "xpos":
        half = cfg.head_size // 2
        zeta = (torch.arange(half, dtype=torch.float64) / half + XPOS_ZETA_OFFSET) / (1 + XPOS_ZETA_OFFSET)
        n = (p - (T + 1) // 2) / cfg.xpos_scale_base  # (T,1)
        q_scale, k_scale = mscale * zeta**n, mscale * zeta ** (-n)
    return tuple(tuple((f(theta) * m).to(torch.float32) for f in (torch.cos, torch.sin))
                 for m in (q_scale, k_scale))


def rotate_half(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x (B,NH,T,HS); cos, sin (T,HS/2) (each may carry a scale). out[i] = x[i] cos - x[i+HS/2] sin,
    out[i+HS/2] = x[i+HS/2] cos + x[i] sin."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


# ---------------------------------------------------------------------------------------------
# Layers (parameters named w, b to match the contract)
# ---------------------------------------------------------------------------------------------


class Linear(nn.Module):
    """y = x W^T + b, W (out, in)."""

    def __init__(self, n_in: int, n_out: int, dtype: torch.dtype):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(n_out, n_in, dtype=dtype))
        self.b = nn.Parameter(torch.zeros(n_out, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.w.T + self.b


class LayerNorm(nn.Module):
    """(x - mean) / sqrt(var + eps) * w + b over the last dim, biased variance."""

    def __init__(self, C: int, dtype: torch.dtype):
        super().__init__()
        self.w = nn.Parameter(torch.ones(C, dtype=dtype))
        self.b = nn.Parameter(torch.zeros(C, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=-1, keepdim=True)
        var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
        return (x - mean) / torch.sqrt(var + LN_EPS) * self.w + self.b


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


class Attention(nn.Module):
    def __init__(self, cfg: Config, dtype: torch.dtype):
        super().__init__()
        self.NH, self.HS, self.causal = cfg.heads, cfg.head_size, cfg.causal
        self.qkv = Linear(cfg.d_model, 3 * cfg.d_model, dtype)
        self.proj = Linear(cfg.d_model, cfg.d_model, dtype)

    def forward(self, x, score_bias, rope) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=-1)  # each (B,T,C)
        # head h takes channels h*HS .. h*HS+HS-1
        q, k, v = (t.view(B, T, self.NH, self.HS).transpose(1, 2) for t in (q, k, v))  # (B,NH,T,HS)
        if rope is not None:
            q, k = rotate_half(q, *rope[0]), rotate_half(k, *rope[1])
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(self.HS)  # (B,NH,T,T)
        if score_bias is not None:
            scores = scores + score_bias  # (NH,T,T)
        if self.causal:
            causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
            scores = scores.masked_fill(~causal, float("-inf"))
        probs = torch.softmax(scores, dim=-1)  # (B,NH,T,T)
        o = (probs @ v).transpose(1, 2).reshape(B, T, C)  # (B,T,C)
        return self.proj(o)


class MLP(nn.Module):
    def __init__(self, cfg: Config, dtype: torch.dtype):
        super().__init__()
        self.fc = Linear(cfg.d_model, cfg.ffn, dtype)
        self.proj = Linear(cfg.ffn, cfg.d_model, dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(gelu_tanh(self.fc(x)))


class Block(nn.Module):
    def __init__(self, cfg: Config, dtype: torch.dtype):
        super().__init__()
        self.ln1 = LayerNorm(cfg.d_model, dtype)
        self.attn = Attention(cfg, dtype)
        self.ln2 = LayerNorm(cfg.d_model, dtype)
        self.mlp = MLP(cfg, dtype)

    def forward(self, x, score_bias, rope) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), score_bias, rope)
        return x + self.mlp(self.ln2(x))


# ---------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------


class Twin(nn.Module):
    """Pre-LN decoder with tied output. Dropout is not modelled (off in every comparison)."""

    def __init__(self, cfg: Config, dtype: torch.dtype = torch.float32, device="cpu"):
        super().__init__()
        cfg.validate()
        self.cfg, self.dtype = cfg, dtype
        C, NH = cfg.d_model, cfg.heads
        self.wte = nn.Parameter(torch.zeros(cfg.vocab, C, dtype=dtype))  # (V,C)
        if cfg.pos == "learned":
            self.wpe = nn.Parameter(torch.zeros(cfg.max_positions, C, dtype=dtype))  # (P,C)
        if cfg.pos == "t5":
            self.t5_bias = nn.Parameter(torch.zeros(cfg.t5_buckets, NH, dtype=dtype))  # (NB,NH)
        self.h = nn.ModuleList(Block(cfg, dtype) for _ in range(cfg.layers))
        self.lnf = LayerNorm(C, dtype)
        if cfg.pos == "alibi":
            slopes = torch.tensor(alibi_slopes(NH), dtype=torch.float32)  # (NH) fp32 as in C++
            self.register_buffer("slopes", slopes.to(dtype), persistent=False)
            if cfg.slopes == "trainable":
                self.alibi_theta = nn.Parameter(torch.zeros(NH, dtype=dtype))  # (NH)
        twin_bias.add_params(self, cfg, dtype)
        self.to(device)

    @staticmethod
    def decays(name: str) -> bool:
        """AdamW weight decay applies (docs/model.md): embeddings and Linear weights only."""
        return name in ("wte", "wpe") or name.endswith((".qkv.w", ".proj.w", ".fc.w"))

    def init_weights(self, seed: int) -> None:
        """The C++ trainer's initialisation table (same distributions, not the same numbers)."""
        g = torch.Generator().manual_seed(seed)
        proj_std = 0.02 / math.sqrt(2 * self.cfg.layers)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.endswith("ln1.w") or name.endswith("ln2.w") or name == "lnf.w":
                    p.fill_(1.0)
                elif name == "t5_bias" or name.endswith(".b"):
                    p.zero_()
                else:
                    std = proj_std if name.endswith(".proj.w") else 0.02
                    p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * std)

    def score_bias(self, T: int, layer: int) -> torch.Tensor | None:
        """(NH,T,T) additive bias_h(i - j) of `layer` for alibi / t5 / the methods of
        twin_bias.py; None otherwise. Causal: entries above the diagonal are masked later,
        whatever they hold; bidirectional: alibi -m_h |i - j|, t5 with half the buckets per
        direction, the others of |i - j|."""
        if self.cfg.pos in twin_bias.METHODS:
            return twin_bias.score_bias(self, self.cfg, T, layer, self.dtype)
        dev = self.wte.device
        d = torch.arange(T, device=dev)[:, None] - torch.arange(T, device=dev)[None, :]  # (T,T) i-j
        if self.cfg.pos == "alibi":
            m = self.slopes
            if self.cfg.slopes == "trainable":
                m = 2.0 * self.slopes * torch.sigmoid(self.alibi_theta)
            if self.cfg.alibi_interpolate and T > self.cfg.train_len:  # Al-Khateeb et al. 2023
                m = m * (self.cfg.train_len / T)
            dist = d if self.cfg.causal else d.abs()
            return -m[:, None, None] * dist.to(self.dtype)  # (NH,T,T)
        if self.cfg.pos == "t5":
            rule = t5_bucket if self.cfg.causal else t5_bucket_bidirectional
            buckets = rule(d, self.cfg.t5_buckets, self.cfg.t5_max_distance)  # (T,T)
            return self.t5_bias[buckets].permute(2, 0, 1)  # (T,T,NH) -> (NH,T,T)
        return None

    def forward(self, tokens: torch.Tensor, targets: torch.Tensor | None = None):
        """tokens, targets (B,T) int. Returns logits (B,T,V) and the mean cross-entropy (or None)."""
        B, T = tokens.shape
        cfg, dev = self.cfg, self.wte.device
        x = self.wte[tokens.long()] * math.sqrt(cfg.d_model)  # (B,T,C), fairseq embed scale
        if cfg.pos == "sinusoidal":
            x = x + sinusoidal_table(T, cfg.d_model).to(dev, self.dtype)
        elif cfg.pos == "learned":
            assert T <= cfg.max_positions, f"T {T} > max_positions {cfg.max_positions}"
            x = x + self.wpe[:T]
        rope = None
        if cfg.pos in ("rotary", "xpos"):
            rope = tuple(tuple(t.to(dev, self.dtype) for t in qk) for qk in rotary_tables(cfg, T))
        for layer, block in enumerate(self.h):
            x = block(x, self.score_bias(T, layer), rope)
        logits = self.lnf(x) @ self.wte.T  # (B,T,V), tied output
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(B * T, -1), targets.reshape(B * T).long())
        return logits, loss


# ---------------------------------------------------------------------------------------------
# Training: AdamW, clipping, schedule
# ---------------------------------------------------------------------------------------------


def lr_at(step: int, tc: TrainConfig) -> float:
    """Warmup then cosine to min_lr; step is 0-based."""
    if step < tc.warmup:
        return tc.lr * (step + 1) / tc.warmup
    min_lr = tc.lr * tc.min_lr_ratio
    progress = (step - tc.warmup) / max(1, tc.steps - tc.warmup)
    return min_lr + 0.5 * (tc.lr - min_lr) * (1.0 + math.cos(math.pi * progress))


def make_optimizer(model: Twin, tc: TrainConfig) -> torch.optim.AdamW:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if Twin.decays(name) else no_decay).append(p)
    groups = [
        {"params": decay, "weight_decay": tc.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=tc.lr, betas=(tc.beta1, tc.beta2), eps=tc.eps)


def train_step(model: Twin, opt: torch.optim.Optimizer, tokens, targets, step: int,
               tc: TrainConfig) -> tuple[float, float]:
    """One step: zero grads, forward, backward, clip, AdamW at lr_at(step).
    Returns (loss before the update, gradient norm before clipping)."""
    for group in opt.param_groups:
        group["lr"] = lr_at(step, tc)
    opt.zero_grad(set_to_none=False)
    _, loss = model(tokens, targets)
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), tc.clip)
    opt.step()
    twin_bias.project(model, model.cfg)
    return loss.item(), norm.item()


def bench_train_step(cfg: Config, B: int, T: int, iters: int = 10, warmup_iters: int = 2,
                     dtype: torch.dtype = torch.float32, threads: int | None = None,
                     seed: int = 0) -> dict:
    """Speed baseline: build the twin at the given sizes, time full training steps
    (forward + backward + clip + AdamW) on random tokens. Returns seconds per step and tokens/s."""
    if threads is not None:
        torch.set_num_threads(threads)
    if cfg.pos == "learned" and cfg.max_positions < T:
        cfg.max_positions = T
    model = Twin(cfg, dtype)
    model.init_weights(seed)
    tc = TrainConfig(steps=warmup_iters + iters)
    opt = make_optimizer(model, tc)
    g = torch.Generator().manual_seed(seed)
    batch = torch.randint(0, cfg.vocab, (B, T + 1), generator=g)
    for s in range(warmup_iters):
        train_step(model, opt, batch[:, :-1], batch[:, 1:], s, tc)
    t0 = time.perf_counter()
    for s in range(iters):
        train_step(model, opt, batch[:, :-1], batch[:, 1:], warmup_iters + s, tc)
    dt = (time.perf_counter() - t0) / iters
    return {"sec_per_step": dt, "tokens_per_sec": B * T / dt, "threads": torch.get_num_threads()}


def main() -> None:
    ap = argparse.ArgumentParser(description="Time training steps of the PyTorch twin (fp32).")
    ap.add_argument("--pos", default="alibi", choices=POS_METHODS)
    ap.add_argument("--vocab", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--d-model", type=int, default=256)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--ffn", type=int, default=1024)
    ap.add_argument("-B", type=int, default=8)
    ap.add_argument("-T", type=int, default=256)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    a = ap.parse_args()
    cfg = Config(vocab=a.vocab, layers=a.layers, d_model=a.d_model, heads=a.heads, ffn=a.ffn,
                 pos=a.pos, max_positions=a.T)
    r = bench_train_step(cfg, a.B, a.T, a.iters, dtype=getattr(torch, a.dtype), threads=a.threads)
    print(f"twin {a.pos} B={a.B} T={a.T} C={a.d_model} L={a.layers} threads={r['threads']}: "
          f"{r['sec_per_step'] * 1e3:.1f} ms/step, {r['tokens_per_sec']:.0f} tok/s")


if __name__ == "__main__":
    main()
