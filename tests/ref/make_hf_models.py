"""Writes tests/golden/hf/: tiny random-weight BLOOM, MPT and Falcon models saved by transformers'
save_pretrained, with what transformers computes from them (test_hf_import.cpp compares alibi
import's model with these).

    python3 tests/ref/make_hf_models.py     # from the repo root; needs torch, transformers, tokenizers
    python3 tests/ref/make_hf_models.py --only falcon,falcon-bf16 --out DIR     # some of them

  */tokenizer.json      a byte-level BPE of 300 tokens trained on tiny Shakespeare (every model
                        has it; the embeddings have 320 rows, padded as BLOOM pads its vocabulary)
  bloom/                BloomForCausalLM: 2 layers, hidden 48, 6 heads (not a power of two), F32
  bloom-bf16/           the same weights rounded to bfloat16, saved as BF16
  mpt/                  MptForCausalLM: 2 layers, d_model 48, 12 heads, alibi_bias_max 8, F32
  mpt-untied-max16/     MPT with alibi_bias_max 16 and an untied lm_head, F32
  mpt-f16/              another MPT saved as F16
  falcon/               FalconForCausalLM with alibi (Falcon-RW's layout: multi_query,
                        parallel_attn and new_decoder_architecture false): 2 layers, hidden 48,
                        6 heads, biases, F32
  falcon-bf16/          the same weights as BF16
  falcon-untied-nobias/ Falcon with bias false, an untied lm_head, 12 heads, ffn_hidden_size 96 and
                        layer_norm_epsilon 1e-6, F32
  */outputs.json        text, its ids, the logits (eager attention, fp32) at ROWS of the 512-token
                        window, the mean next-token loss over it, and a greedy 32-token continuation
                        of its first 16 tokens by model.generate (KV cache)

Weights are the library's initialisation plus N(0, 0.1^2) noise, so that every weight matters.

transformers' MptModel.forward builds its ALiBi bias with the default alibi_bias_max of 8 whatever
attn_config.alibi_bias_max says (modeling_mpt.py: self.build_mpt_alibi_tensor(num_heads,
max_seq_len, device=...)); MosaicML's own MPT code, which trained the models, uses the field.
The reference here uses it too (honour_alibi_bias_max), so mpt-untied-max16 is the model its
config describes; every released MPT has 8, where the two agree.

transformers' Falcon builds its ALiBi bias in bfloat16 (modeling_falcon.py, build_alibi_tensor:
`slopes[..., None].bfloat16() * arange_tensor`, as tiiuae's RW code did): each slope is rounded to
bf16 (exact where the slopes are powers of two: 6 heads here, not 12), and so is m_h * j for key
position j (exact for j <= 256, so for the greedy continuation). The reference computes that bias in
fp32 (exact_falcon_alibi), the ALiBi the config describes; outputs.json's "bf16_alibi" records how
far transformers' own bf16 bias moves the logits and the loss from it.
"""
import argparse
import inspect
import json
import lzma
import os

import torch
import tokenizers
import transformers
from tokenizers import decoders, models, pre_tokenizers, trainers
from transformers import (BloomConfig, BloomForCausalLM, FalconConfig, FalconForCausalLM,
                          MptConfig, MptForCausalLM)
from transformers.models.falcon import modeling_falcon
from transformers.models.mpt.modeling_mpt import MptModel

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
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


def exact_falcon_alibi():
    """transformers' Falcon ALiBi bias, its own code less the cast of the slopes to bfloat16:
    slopes and m_h * j in fp32. Returns (transformers' function, this one)."""
    bf16 = modeling_falcon.build_alibi_tensor
    source = inspect.getsource(bf16)
    assert source.count(".bfloat16()") == 1, "transformers' build_alibi_tensor changed"
    scope = dict(vars(modeling_falcon))
    exec(source.replace(".bfloat16()", ""), scope)
    fp32 = scope["build_alibi_tensor"]
    modeling_falcon.build_alibi_tensor = fp32
    return bf16, fp32


def reference_outputs(ref, ids):
    """Logits at ROWS, the mean next-token loss and the greedy continuation of ids[:PROMPT]."""
    x = torch.tensor([ids])
    with torch.no_grad():
        out = ref(x, labels=x)
        cont = ref.generate(x[:, :PROMPT], max_new_tokens=NEW, do_sample=False, use_cache=True,
                            pad_token_id=0, eos_token_id=None)
    return out.logits[0][ROWS], float(out.loss), [int(t) for t in cont[0, PROMPT:]]


def bf16_alibi_effect(ref, ids, logits, loss, greedy, falcon_alibi):
    """How far transformers' own bf16 Falcon bias moves the outputs from the fp32 one."""
    bf16, fp32 = falcon_alibi
    modeling_falcon.build_alibi_tensor = bf16
    try:
        theirs, their_loss, their_greedy = reference_outputs(ref, ids)
    finally:
        modeling_falcon.build_alibi_tensor = fp32
    err = ((theirs - logits).abs().max(dim=1).values / logits.abs().max(dim=1).values).tolist()
    return {"max_row_err_rows_to_256": max(e for r, e in zip(ROWS, err) if r <= 256),
            "max_row_err": max(err), "loss": their_loss, "loss_diff": their_loss - loss,
            "greedy_equal": their_greedy == greedy}


def record(model, folder, text, ids, dtype=None, falcon_alibi=None):
    os.makedirs(folder, exist_ok=True)
    saved = model.to(dtype) if dtype else model
    saved.save_pretrained(folder, safe_serialization=True)
    # The reference runs in fp32 on the weights as saved (bf16 weights upcast exactly).
    ref = type(model).from_pretrained(folder, attn_implementation="eager",
                                      dtype=torch.float32).eval()
    logits, loss, greedy = reference_outputs(ref, ids)
    res = {"versions": {"torch": torch.__version__, "transformers": transformers.__version__},
           "text": text, "ids": ids, "rows": ROWS,
           "logits": [[float(v) for v in row] for row in logits],
           "loss": loss, "prompt": PROMPT, "greedy": greedy}
    if falcon_alibi:
        res["bf16_alibi"] = bf16_alibi_effect(ref, ids, logits, loss, greedy, falcon_alibi)
    with open(os.path.join(folder, "outputs.json"), "w") as f:
        json.dump(res, f)
        f.write("\n")


def falcon_config(**kw):
    """Falcon-RW's layout (the ALiBi Falcons): attention then MLP, one k and v per head."""
    return FalconConfig(vocab_size=ROWS_V, hidden_size=48, num_hidden_layers=2, alibi=True,
                        multi_query=False, new_decoder_architecture=False, parallel_attn=False,
                        **kw)


def main():
    args = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    args.add_argument("--out", default=os.path.join(REPO, "tests", "golden", "hf"),
                      help="where the folders go (default: tests/golden/hf)")
    args.add_argument("--only", default="",
                      help="comma-separated folder names to write (default: all); every model "
                           "is still built, so each has the weights of a full run")
    args = args.parse_args()
    only = set(filter(None, args.only.split(",")))
    torch.manual_seed(0)
    honour_alibi_bias_max()
    falcon_alibi = exact_falcon_alibi()
    with lzma.open(SHAKESPEARE, "rt", encoding="utf-8") as f:
        text_all = f.read()
    tok = make_tokenizer(text_all)
    text = text_all[300_000:306_000]
    ids = tok.encode(text).ids[:T]
    assert len(ids) == T, len(ids)
    text = tok.decode(ids)

    def emit(name, model, dtype=None, falcon=False):
        if only and name not in only:
            return
        folder = os.path.join(args.out, name)
        record(model, folder, text, ids, dtype, falcon_alibi if falcon else None)
        tok.save(os.path.join(folder, "tokenizer.json"))

    bloom_cfg = BloomConfig(vocab_size=ROWS_V, hidden_size=48, n_layer=2, n_head=6)
    bloom = noisy(BloomForCausalLM(bloom_cfg), 1)
    for name, dtype in (("bloom", None), ("bloom-bf16", torch.bfloat16)):
        emit(name, copy_of(bloom, bloom_cfg), dtype)
    for name, bias_max, tied in (("mpt", 8, True), ("mpt-untied-max16", 16, False)):
        cfg = MptConfig(d_model=48, n_heads=12, n_layers=2, expansion_ratio=4, max_seq_len=T,
                        vocab_size=ROWS_V, attn_config={"alibi": True, "alibi_bias_max": bias_max},
                        tie_word_embeddings=tied)
        emit(name, noisy(MptForCausalLM(cfg), 2))
    cfg = MptConfig(d_model=48, n_heads=12, n_layers=2, expansion_ratio=4, max_seq_len=T,
                    vocab_size=ROWS_V, attn_config={"alibi": True})
    emit("mpt-f16", noisy(MptForCausalLM(cfg), 3), torch.float16)
    # Falcon: seeded on their own, so that they do not depend on the models above.
    torch.manual_seed(4)
    falcon_cfg = falcon_config(num_attention_heads=6, bias=True)
    falcon = noisy(FalconForCausalLM(falcon_cfg), 4)
    for name, dtype in (("falcon", None), ("falcon-bf16", torch.bfloat16)):
        emit(name, copy_of(falcon, falcon_cfg), dtype, falcon=True)
    torch.manual_seed(5)
    cfg = falcon_config(num_attention_heads=12, bias=False, ffn_hidden_size=96,
                        layer_norm_epsilon=1e-6, tie_word_embeddings=False)
    emit("falcon-untied-nobias", noisy(FalconForCausalLM(cfg), 5), falcon=True)
    print(f"wrote {args.out}")


def copy_of(model, cfg):
    fresh = type(model)(cfg)
    fresh.load_state_dict(model.state_dict())
    return fresh.eval()


if __name__ == "__main__":
    main()
