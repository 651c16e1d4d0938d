"""Goldens for `alibi import FILE.gguf`: tests/golden/gguf/{bloom,mpt}-*.gguf, a tiny BLOOM and a
tiny MPT converted by llama.cpp's own convert_hf_to_gguf.py and quantized by its llama-quantize,
and bloom.json, mpt.json with what llama.cpp and a double-precision reference compute from each
file (tests/test_gguf_import.cpp).

    bash bench/llama_build.sh /work/llama-build      # llama.cpp from PyPI's llama-cpp-python sdist
    LLAMA=/work/llama-build /work/venv/bin/python tests/ref/make_gguf_models.py [bloom] [mpt]

The model: BloomForCausalLM, 2 layers, hidden 64, 4 heads, the 320-row vocabulary and the
tokenizer of tests/golden/hf/ (a byte-level BPE of 300 tokens), weights transformers'
initialisation plus N(0, 0.1^2) noise. Hidden 64 is not a multiple of 256, so llama-quantize gives
the K presets' matrices of 64 columns its fallback types; ffn_down (256 columns) takes the K types.

  bloom-f16.gguf      convert_hf_to_gguf.py --outtype f16 (the vectors stay F32)
  bloom-q8_0.gguf     llama-quantize bloom-f16.gguf Q8_0
  bloom-q4_0.gguf     llama-quantize bloom-f16.gguf Q4_0
  bloom-q4_k_m.gguf   llama-quantize bloom-f16.gguf Q4_K_M
  mpt-f16.gguf, mpt-q8_0.gguf   MptForCausalLM (2 layers, d_model 64, 4 heads, alibi_bias_max 8,
                      no biases), converted as MosaicML's MPTForCausalLM (the converter's name for
                      it; the tensors are named alike) and quantized to Q8_0
  bloom.json, mpt.json  the text and its ids (HF tokenizer), llama.cpp's ids for the text, and per
                      file: `reference`, the logits at ROWS of transformers' BloomForCausalLM run in
                      float64 on gguf-py's dequantisation of the file's tensors, and `llama`,
                      llama.cpp's logits at ROWS (llama-cpp-python's bindings on the build above,
                      2 threads), with `llama_err`, llama.cpp's largest distance from the reference
                      per row over that row's logit range (llama.cpp rounds activations to 8 bits
                      per block for quantized products, to f16 for F16 ones, and keeps its KV cache
                      in f16).

convert_hf_to_gguf.py names the BPE pre-tokenizer by hashing a known text's ids; a tokenizer it has
not seen (this one) is refused. Ours splits as GPT-2's does (ByteLevel, use_regex), so the script
tells the converter "gpt-2", the name llama.cpp gives that split.
"""
import json
import os
import subprocess
import sys
import tempfile
import types

import numpy as np
import torch
from transformers import BloomConfig, BloomForCausalLM, MptConfig, MptForCausalLM

LLAMA = os.environ["LLAMA"]
VENDOR = os.path.join(LLAMA, "src", "vendor", "llama.cpp")
sys.path[:0] = [VENDOR, os.path.join(VENDOR, "gguf-py"), os.path.join(LLAMA, "src")]
os.environ.setdefault("LLAMA_CPP_LIB_PATH", os.path.join(LLAMA, "build", "bin"))
sys.modules.setdefault("diskcache", types.SimpleNamespace(Cache=object))  # unused by eval

import gguf  # noqa: E402
from gguf import quants  # noqa: E402

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
HF = os.path.join(REPO, "tests", "golden", "hf", "bloom")
OUT = os.path.join(REPO, "tests", "golden", "gguf")
T = 64
ROWS = [0, 1, 7, 31, 63]
HIDDEN, HEADS, LAYERS, VOCAB = 64, 4, 2, 320

# Per family: the model, the presets, and llama.cpp's names -> transformers' (under
# "transformer."; blk.N -> LAYER.N).
FAMILIES = {
    "bloom": {
        "model": lambda: BloomForCausalLM(BloomConfig(
            vocab_size=VOCAB, hidden_size=HIDDEN, n_layer=LAYERS, n_head=HEADS, bos_token_id=1,
            eos_token_id=2, seq_length=128)),
        "presets": ["Q8_0", "Q4_0", "Q4_K_M"],
        "layer": "h",
        "names": {"token_embd": "word_embeddings", "token_embd_norm": "word_embeddings_layernorm",
                  "output_norm": "ln_f", "attn_norm": "input_layernorm",
                  "attn_qkv": "self_attention.query_key_value",
                  "attn_output": "self_attention.dense", "ffn_norm": "post_attention_layernorm",
                  "ffn_up": "mlp.dense_h_to_4h", "ffn_down": "mlp.dense_4h_to_h"},
        "qkv_per_head": True,  # GGUF: all q, all k, all v; BLOOM: per head q, k, v
    },
    "mpt": {
        "model": lambda: MptForCausalLM(MptConfig(
            d_model=HIDDEN, n_heads=HEADS, n_layers=LAYERS, expansion_ratio=4, max_seq_len=128,
            vocab_size=VOCAB, bos_token_id=1, eos_token_id=2,
            attn_config={"alibi": True, "alibi_bias_max": 8})),
        "presets": ["Q8_0"],
        "architecture": "MPTForCausalLM",
        "layer": "blocks",
        "names": {"token_embd": "wte", "output_norm": "norm_f", "attn_norm": "norm_1",
                  "attn_qkv": "attn.Wqkv", "attn_output": "attn.out_proj", "ffn_norm": "norm_2",
                  "ffn_up": "ffn.up_proj", "ffn_down": "ffn.down_proj"},
        "qkv_per_head": False,
    },
}


def make_model(fam, folder):
    torch.manual_seed(30)
    model = fam["model"]()
    g = torch.Generator().manual_seed(30)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    model.save_pretrained(folder, safe_serialization=True)
    if "architecture" in fam:
        with open(os.path.join(folder, "config.json")) as f:
            cfg = json.load(f)
        cfg["architectures"] = [fam["architecture"]]
        with open(os.path.join(folder, "config.json"), "w") as f:
            json.dump(cfg, f)
    with open(os.path.join(HF, "tokenizer.json")) as f:
        tok = f.read()
    with open(os.path.join(folder, "tokenizer.json"), "w") as f:
        f.write(tok)
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "PreTrainedTokenizerFast"}, f)
    return model.config


def convert(folder, out, name):
    import conversion.base
    import convert_hf_to_gguf
    conversion.base.TextModel.get_vocab_base_pre = lambda self, tokenizer: "gpt-2"
    sys.argv = ["convert_hf_to_gguf.py", folder, "--outtype", "f16", "--outfile", out,
                "--model-name", name]
    convert_hf_to_gguf.main()


def hf_state(fam, path):
    """The file's tensors dequantized by gguf-py, in transformers' names and layout."""
    names, hs = fam["names"], HIDDEN // HEADS
    state = {}
    for t in gguf.GGUFReader(path).tensors:
        x = quants.dequantize(t.data, t.tensor_type).astype(np.float64)
        x = x.reshape([int(d) for d in reversed(t.shape)])
        parts = t.name.split(".")
        if parts[0] == "blk":
            name = f"{fam['layer']}.{parts[1]}.{names[parts[2]]}.{parts[3]}"
            if parts[2] == "attn_qkv" and fam["qkv_per_head"]:
                x = x.reshape((3, HEADS, hs) + x.shape[1:]).swapaxes(0, 1).reshape(x.shape)
        else:
            name = f"{names[parts[0]]}.{parts[1]}"
        state["transformer." + name] = torch.from_numpy(np.ascontiguousarray(x))
    return state


def reference(fam, cfg, path, ids):
    model = type(fam["model"]())(cfg).double().eval()
    missing, unexpected = model.load_state_dict(hf_state(fam, path), strict=False)
    assert not unexpected and all(m == "lm_head.weight" for m in missing), (missing, unexpected)
    model.tie_weights()
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].numpy()


def llama_logits(path, ids):
    from llama_cpp import Llama
    llm = Llama(model_path=path, n_ctx=128, n_batch=128, logits_all=True, n_threads=2,
                verbose=False)
    llm.eval(ids)
    return np.array(llm.scores[:len(ids)], dtype=np.float64), llm


def floats(row):
    """A row of logits as JSON numbers, 9 significant digits (a float32 round-trips)."""
    return [float(f"{v:.9g}") for v in row]


def family(name, fam, text, ids):
    res = {"text": text, "ids": ids, "rows": ROWS, "files": {}}
    with tempfile.TemporaryDirectory() as tmp:
        cfg = make_model(fam, tmp)
        f16 = os.path.join(OUT, f"{name}-f16.gguf")
        convert(tmp, f16, f"{name}-tiny")
        files = {"F16": f16}
        for preset in fam["presets"]:
            files[preset] = os.path.join(OUT, f"{name}-{preset.lower()}.gguf")
            subprocess.run([os.path.join(LLAMA, "build", "bin", "llama-quantize"), f16,
                            files[preset], preset], check=True, capture_output=True)
        for preset, path in files.items():
            ref = reference(fam, cfg, path, ids)
            got, llm = llama_logits(path, ids)
            if preset == "F16":
                res["llama_ids"] = llm.tokenize(text.encode(), add_bos=False, special=False)
            err = np.abs(got - ref).max(axis=1) / (ref.max(axis=1) - ref.min(axis=1))
            types = sorted({t.tensor_type.name for t in gguf.GGUFReader(path).tensors})
            res["files"][os.path.basename(path)] = {
                "preset": preset, "types": types,
                "reference": [floats(ref[r]) for r in ROWS],
                "llama": [floats(got[r]) for r in ROWS],
                "llama_err": [float(err[r]) for r in ROWS]}
            print(name, preset, types, "llama.cpp vs reference, max per-row err", float(err.max()))
    with open(os.path.join(OUT, f"{name}.json"), "w") as f:
        json.dump(res, f)
        f.write("\n")


def main():
    with open(os.path.join(HF, "outputs.json")) as f:
        ids = json.load(f)["ids"][:T]
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(os.path.join(HF, "tokenizer.json"))
    text = tok.decode(ids)
    assert tok.encode(text).ids == ids
    only = sys.argv[1:] or list(FAMILIES)
    for name in only:
        family(name, FAMILIES[name], text, ids)


if __name__ == "__main__":
    main()
