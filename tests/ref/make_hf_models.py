"""Writes tests/golden/hf/: tiny random-weight BLOOM and MPT models saved by transformers'
save_pretrained, with what transformers computes from them (test_hf_import.cpp compares alibi
import's model with these).

    python3 tests/ref/make_hf_models.py     # from the repo root; needs torch, transformers, tokenizers

  */tokenizer.json      a byte-level BPE of 300 tokens trained on tiny Shakespeare (every model
                        has it; the embeddings have 320 rows, padded as BLOOM pads its vocabulary)
  bloom/                BloomForCausalLM: 2 layers, hidden 48, 6 heads (not a power of two), F32
  bloom-bf16/           the same weights rounded to bfloat16, saved as BF16
  mpt/                  MptForCausalLM: 2 layers, d_model 48, 12 heads, alibi_bias_max 8, F32
  mpt-untied-max16/     MPT with alibi_bias_max 16 and an untied lm_head, F32
  mpt-f16/              another MPT saved as F16
  */outputs.json        text, its ids, the logits (eager attention, fp32) at ROWS of the 512-token
                        window, the mean next-token loss over it, and a greedy 32-token continuation
                        of its first 16 tokens by model.generate (KV cache)

Weights are the library's initialisation plus N(0, 0.1^2) noise, so that every weight matters.

transformers' MptModel.forward builds its ALiBi bias with the default alibi_bias_max of 8 whatever
attn_config.alibi_bias_max says (modeling_mpt.py: self.build_mpt_alibi_tensor(num_heads,
max_seq_len, device=...)); MosaicML's own MPT code, which trained the models, uses the field.
The reference here uses it too (honour_alibi_bias_max), so mpt-untied-max16 is the model its
config describes; every released MPT has 8, where the two agree.
"""
import json
import lzma
import os

import torch
import tokenizers
import transformers
from tokenizers import decoders, models, pre_tokenizers, trainers
from transformers import BloomConfig, BloomForCausalLM, MptConfig, MptForCausalLM
from transformers.models.mpt.modeling_mpt import MptModel

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = os.path.join(REPO, "tests", "golden", "hf")
SHAKESPEARE = os.path.join(REPO, "tests", "data", "tinyshakespeare.txt.xz")
VOCAB, ROWS_V, T, PROMPT, NEW = 300, 320, 512, 16, 32
ROWS = sorted({0, 1, 2, 7, 31, 63, 64, 100, 200, 255, 256, 300, 400, 480, 510, 511})


def honour_alibi_bias_max():
    build = MptModel.build_mpt_alibi_tensor

    def with_config_max(self, num_heads, sequence_length, alibi_bias_max=8, device=None):
        return build(self, num_heads, sequence_length,
                     self.config.attn_config.alibi_bias_max, device)
    MptModel.build_mpt_alibi_tensor = with_config_max


def make_tokenizer(text):
    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([text[:200_000]], trainer)
    return tok


def noisy(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    return model.eval()


def record(model, folder, text, ids, dtype=None):
    os.makedirs(folder, exist_ok=True)
    saved = model.to(dtype) if dtype else model
    saved.save_pretrained(folder, safe_serialization=True)
    # The reference runs in fp32 on the weights as saved (bf16 weights upcast exactly).
    ref = type(model).from_pretrained(folder, attn_implementation="eager",
                                      dtype=torch.float32).eval()
    x = torch.tensor([ids])
    with torch.no_grad():
        out = ref(x, labels=x)
        logits = out.logits[0]
        cont = ref.generate(x[:, :PROMPT], max_new_tokens=NEW, do_sample=False, use_cache=True,
                            pad_token_id=0, eos_token_id=None)
    res = {"versions": {"torch": torch.__version__, "transformers": transformers.__version__},
           "text": text, "ids": ids, "rows": ROWS,
           "logits": [[float(v) for v in logits[r]] for r in ROWS],
           "loss": float(out.loss), "prompt": PROMPT,
           "greedy": [int(t) for t in cont[0, PROMPT:]]}
    with open(os.path.join(folder, "outputs.json"), "w") as f:
        json.dump(res, f)
        f.write("\n")


def main():
    torch.manual_seed(0)
    honour_alibi_bias_max()
    with lzma.open(SHAKESPEARE, "rt", encoding="utf-8") as f:
        text_all = f.read()
    tok = make_tokenizer(text_all)
    text = text_all[300_000:306_000]
    ids = tok.encode(text).ids[:T]
    assert len(ids) == T, len(ids)
    text = tok.decode(ids)

    def copy_tokenizer(folder):
        tok.save(os.path.join(folder, "tokenizer.json"))

    bloom_cfg = BloomConfig(vocab_size=ROWS_V, hidden_size=48, n_layer=2, n_head=6)
    bloom = noisy(BloomForCausalLM(bloom_cfg), 1)
    for name, dtype in (("bloom", None), ("bloom-bf16", torch.bfloat16)):
        folder = os.path.join(OUT, name)
        record(bloom_copy(bloom, bloom_cfg), folder, text, ids, dtype)
        copy_tokenizer(folder)
    for name, bias_max, tied in (("mpt", 8, True), ("mpt-untied-max16", 16, False)):
        cfg = MptConfig(d_model=48, n_heads=12, n_layers=2, expansion_ratio=4, max_seq_len=T,
                        vocab_size=ROWS_V, attn_config={"alibi": True, "alibi_bias_max": bias_max},
                        tie_word_embeddings=tied)
        folder = os.path.join(OUT, name)
        record(noisy(MptForCausalLM(cfg), 2), folder, text, ids)
        copy_tokenizer(folder)
    folder = os.path.join(OUT, "mpt-f16")
    cfg = MptConfig(d_model=48, n_heads=12, n_layers=2, expansion_ratio=4, max_seq_len=T,
                    vocab_size=ROWS_V, attn_config={"alibi": True})
    record(noisy(MptForCausalLM(cfg), 3), folder, text, ids, torch.float16)
    copy_tokenizer(folder)
    print(f"wrote {OUT}")


def bloom_copy(model, cfg):
    fresh = BloomForCausalLM(cfg)
    fresh.load_state_dict(model.state_dict())
    return fresh.eval()


if __name__ == "__main__":
    main()
