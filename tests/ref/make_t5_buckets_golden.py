"""Writes tests/golden/t5/relative_position_buckets.json: T5's relative-position buckets as
transformers computes them (T5Attention._relative_position_bucket), causal (bidirectional=False)
and bidirectional, for relative positions -300..300 (memory minus query, transformers' sign) and
a few (num_buckets, max_distance). test_position.cpp compares ours with them.

    python3 tests/ref/make_t5_buckets_golden.py     # from the repo root; needs torch, transformers
"""
import json
import os

import torch
import transformers
from transformers.models.t5.modeling_t5 import T5Attention

OUT = os.path.join(os.path.dirname(__file__), "..", "golden", "t5", "relative_position_buckets.json")
CONFIGS = [(32, 128), (8, 16), (16, 64), (4, 6)]
REL = torch.arange(-300, 301)


def main():
    table = {}
    for nb, md in CONFIGS:
        for bidirectional in (False, True):
            # causal: transformers passes relative positions <= 0 (keys at or before the query)
            b = T5Attention._relative_position_bucket(REL, bidirectional=bidirectional,
                                                      num_buckets=nb, max_distance=md)
            table[f"{nb}_{md}_{'bidirectional' if bidirectional else 'causal'}"] = b.tolist()
    with open(OUT, "w") as f:
        json.dump({"versions": {"torch": torch.__version__, "transformers": transformers.__version__},
                   "relative_positions": REL.tolist(), "buckets": table}, f)
        f.write("\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
