"""Writes tests/golden/rope/rope_scaling.json: rotary's scaled frequencies and attention factor
as transformers computes them (RopeScaling.TablesAgreeWithTransformers, tests/test_extension.cpp,
compares rotary_tables with them).

    python3 tests/ref/make_rope_scaling_golden.py     # from the repo root; needs torch, transformers

  "cases": [{"rope_scaling", "head_size", "factor", "train_len",   our ModelConfig's fields
             "rope_type", "inv_freq": [HS/2], "attention_factor"}]  transformers' answer, float32
  "versions": the torch and transformers that made them

transformers.modeling_rope_utils.ROPE_INIT_FUNCTIONS on a LlamaConfig with rope_theta 10000:
  pi   "linear",  factor s
  ntk  "dynamic", factor 1 at seq_len s * L: its base b ((factor seq_len / L) - (factor - 1))^(D/(D-2))
       is then the static NTK-aware b s^(D/(D-2)) (dynamic NTK recomputes it per length)
  yarn "yarn",    factor s, original_max_position_embeddings L, beta_fast 32, beta_slow 1
The twin's own rope_frequencies (tests/ref/twin.py, float64) must agree with every case.
"""
import json
import os
import sys

import torch
import transformers
from transformers import LlamaConfig
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from twin import ROPE_BASE, Config, rope_frequencies  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "golden", "rope", "rope_scaling.json")
# transformers evaluates b^(2i/D) in float32 (measured: within 2.4e-7 of the float64 twin);
# a formula error moves a frequency by 1e-3 or more.
TWIN_TOL = 1e-6

# (rope_scaling, head size, s, L). yarn's L spans its ramp's clamps: at (64, 2, 64) the pair
# turning 32 times is below 0, at (8, 4, 10**8) the pair turning once is past HS - 1; (8, 4, 256)
# is the golden model's (tests/ref/make_golden.py, rotary_yarn).
CASES = [
    ("pi", 64, 4.0, 512), ("pi", 128, 2.5, 2048), ("pi", 8, 0.5, 256),
    ("ntk", 64, 4.0, 512), ("ntk", 128, 8.0, 2048), ("ntk", 8, 2.0, 256),
    ("yarn", 64, 4.0, 512), ("yarn", 128, 8.0, 2048), ("yarn", 64, 2.0, 64),
    ("yarn", 8, 4.0, 256), ("yarn", 8, 4.0, 10**8), ("yarn", 96, 16.0, 4096),
]


def transformers_tables(kind, HS, s, L):
    params = {"rope_theta": ROPE_BASE}
    if kind == "pi":
        params.update(rope_type="linear", factor=s)
    elif kind == "ntk":
        params.update(rope_type="dynamic", factor=1.0)
    else:
        params.update(rope_type="yarn", factor=s, original_max_position_embeddings=L)
    cfg = LlamaConfig(hidden_size=2 * HS, num_attention_heads=2, head_dim=HS,
                      max_position_embeddings=int(L * s) if kind == "yarn" else L,
                      rope_parameters=params)
    extra = {"seq_len": int(round(s * L))} if kind == "ntk" else {}
    inv_freq, factor = ROPE_INIT_FUNCTIONS[params["rope_type"]](cfg, "cpu", **extra)
    return params["rope_type"], inv_freq.to(torch.float64), float(factor)


def main():
    cases = []
    for kind, HS, s, L in CASES:
        rope_type, inv_freq, factor = transformers_tables(kind, HS, s, L)
        twin_freq, twin_factor = rope_frequencies(
            Config(d_model=HS, heads=1, pos="rotary", rope_scaling=kind, rope_factor=s, train_len=L))
        err = ((twin_freq - inv_freq).abs() / inv_freq).max().item()
        assert err <= TWIN_TOL and abs(twin_factor - factor) <= 1e-12, (kind, HS, s, L, err)
        cases.append({"rope_scaling": kind, "head_size": HS, "factor": s, "train_len": L,
                      "rope_type": rope_type, "inv_freq": [float(x) for x in inv_freq],
                      "attention_factor": factor})
        print(f"{kind:4s} HS {HS:3d} s {s:4g} L {L:9d}: twin within {err:.1e}, factor {factor:.6f}")
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump({"versions": {"torch": torch.__version__, "transformers": transformers.__version__},
                   "cases": cases}, f, indent=1)
        f.write("\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
