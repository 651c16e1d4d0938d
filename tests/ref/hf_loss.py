"""The loss transformers computes for a Hugging Face model folder on a text, in alibi eval's
nonoverlapping windows: to compare an `alibi export` with `alibi eval` of the checkpoint it came
from (docs/hf.md, "Export").

    python3 tests/ref/hf_loss.py HF_DIR TEXT_FILE LENGTH     # needs torch, transformers

Windows as alibi eval's nonoverlapping mode: the text's ids (tokenizer.json, no special tokens)
cut into windows of LENGTH inputs, each predicting the next id at every position, the last window
shorter; the mean cross-entropy over every target, in fp32 with eager attention. Prints the loss
and the perplexity.
"""
import math
import sys

import torch
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM


def main():
    folder, text_file, length = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ids = Tokenizer.from_file(f"{folder}/tokenizer.json").encode(
        open(text_file, encoding="utf-8").read(), add_special_tokens=False).ids
    model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager",
                                                 dtype=torch.float32).eval()
    nats, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(ids) - 1, length):
            x = torch.tensor([ids[start:start + length + 1]])
            logits = model(x[:, :-1]).logits[0]
            nats += float(torch.nn.functional.cross_entropy(logits, x[0, 1:], reduction="sum"))
            count += x.shape[1] - 1
    print(f"transformers: {count} targets, loss {nats / count:.6f}, ppl {math.exp(nats / count):.4f}")


if __name__ == "__main__":
    main()
