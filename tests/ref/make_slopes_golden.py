"""Writes tests/golden/slopes/alibi_slopes.json: the ALiBi slopes of BLOOM and MPT for every head
count 1..128, as transformers computes them (test_position.cpp compares ours with them).

    python3 tests/ref/make_slopes_golden.py     # from the repo root; needs torch, transformers

  "bloom":     {NH: [m_1..m_NH]}  modeling_bloom.build_alibi_tensor (the paper's rule), float32
  "mpt_max8":  {NH: [m_1..m_NH]}  modeling_mpt.build_mpt_alibi_tensor, alibi_bias_max = 8, float32
  "mpt_max4", "mpt_max16": the same with alibi_bias_max 4 and 16 (9 significant digits)
  "versions":  the torch and transformers that made them

Each slope is read off the bias the library builds (BLOOM: the bias of key 1 for an all-ones
mask; MPT: minus the bias of distance 1), so it is what the model adds, not a re-derivation.
"""
import json
import os

import torch
import transformers
from transformers.models.bloom.modeling_bloom import build_alibi_tensor
from transformers.models.mpt.modeling_mpt import build_mpt_alibi_tensor

OUT = os.path.join(os.path.dirname(__file__), "..", "golden", "slopes", "alibi_slopes.json")


def main():
    bloom, mpt = {}, {4: {}, 8: {}, 16: {}}
    for nh in range(1, 129):
        b = build_alibi_tensor(torch.ones(1, 2), nh, torch.float32)  # (NH, 1, 2): m_h * [0, 1]
        bloom[nh] = [float(x) for x in b[:, 0, 1]]
        for bias_max, table in mpt.items():
            m = build_mpt_alibi_tensor(nh, 2, alibi_bias_max=bias_max)  # (NH, 1, 2): m_h * [-1, 0]
            table[nh] = [float(-x) if bias_max == 8 else float(f"{float(-x):.9g}")
                         for x in m[:, 0, 0]]
    with open(OUT, "w") as f:
        json.dump({"versions": {"torch": torch.__version__, "transformers": transformers.__version__},
                   "bloom": bloom, **{f"mpt_max{k}": v for k, v in mpt.items()}}, f)
        f.write("\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
