#!/usr/bin/env bash
# Seed corpora for the fuzz targets, made from real files: a slice of the bundled corpus prepared
# with each tokenizer (.tok files, tokenizer.json files), a tiny model trained 2 steps on each
# (checkpoints carrying no tokenizer, a SentencePiece model and a tokenizer.json), and the Hugging
# Face fixtures under tests/golden. Made at fuzz time, not committed: they follow the formats.
# Usage: tests/fuzz/make_seeds.sh ALIBI_BINARY OUT_DIR   (OUT_DIR/<target>/ per target)
set -euo pipefail
cd "$(dirname "$0")/../.."
ALIBI=$(realpath "${1:?usage: make_seeds.sh ALIBI_BINARY OUT_DIR}")
OUT=${2:?usage: make_seeds.sh ALIBI_BINARY OUT_DIR}
# The fuzz build's CLI runs under ASan; MPI's and OpenMP's start-up allocations are not ours.
export ASAN_OPTIONS=detect_leaks=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# 30 KB of text: enough for a 400-piece BPE (it holds 323 distinct characters), small enough to
# keep the seeds in the KB range.
(xz -dc data/default-corpus.txt.xz || true) | head -c 30000 > "$work/corpus.txt"
for tok in bytes bpe bytebpe; do
  "$ALIBI" --threads 1 prepare --input "$work/corpus.txt" --out "$work/data-$tok" \
    --tokenizer "$tok" --vocab 400 > /dev/null 2>&1
  "$ALIBI" --threads 1 train --data "$work/data-$tok" --out "$work/run-$tok" --layers 1 \
    --d-model 8 --heads 2 --ffn 16 --seq-len 8 --batch 1 --steps 2 --eval-windows 1 \
    > /dev/null 2>&1
done

rm -rf "$OUT"
mkdir -p "$OUT"/{safetensors,checkpoint,token_split,tokenizer,hf_config,cli_lengths,serve_request,gguf}
cp "$work"/run-bytes/ckpt-*.safetensors "$OUT/safetensors/run-bytes.safetensors"
for tok in bytes bpe bytebpe; do
  cp "$work"/run-$tok/ckpt-*.safetensors "$OUT/checkpoint/run-$tok.safetensors"
  cp "$work/data-$tok/valid.tok" "$OUT/token_split/$tok-valid.tok"
  cp "$work/data-$tok/tokenizer.json" "$OUT/tokenizer/data-$tok.json"
done
cp "$work/data-bytebpe/hf-tokenizer.json" "$OUT/tokenizer/bytebpe-hf.json"
for f in bloom kitchen; do
  cp "tests/golden/tokenizer/$f.tokenizer.json" "$OUT/tokenizer/golden-$f.json"
done
for d in tests/golden/hf/*/; do
  cp "$d/config.json" "$OUT/hf_config/$(basename "$d").json"
done
# The GGUF goldens (llama.cpp's converter and llama-quantize, gguf-py's block file).
cp tests/golden/gguf/*.gguf "$OUT/gguf/"
printf '128,256,512' > "$OUT/cli_lengths/ascending"
printf '1024,32,32,1' > "$OUT/cli_lengths/repeats"
printf '1073741824' > "$OUT/cli_lengths/largest"
# alibi serve's bodies: every completions field, prompts as ids, tokenize and detokenize.
printf '{"model":"m","prompt":["a","bc"],"max_tokens":7,"temperature":0.5,"top_p":0.9,"top_k":3,"seed":-1,"n":2,"stop":["x","yz"],"stream":true,"stream_options":{"include_usage":true},"logprobs":2,"echo":false}' \
  > "$OUT/serve_request/completion"
printf '{"prompt":[[1,2],[3]],"max_tokens":null}' > "$OUT/serve_request/ids"
printf '{"content":"hello","add_special":true,"with_pieces":true}' > "$OUT/serve_request/tokenize"
printf '{"tokens":[104,105,33]}' > "$OUT/serve_request/detokenize"
printf '1000000,128,0,2000000000' > "$OUT/cli_lengths/memory_flags"  # --batch .. --max-new-tokens
printf '3,40,100,300' > "$OUT/cli_lengths/memory_fits"
# Inputs that once broke a loader stay in its corpus (tests/fuzz/regressions/<target>/).
for d in tests/fuzz/regressions/*/; do
  [ -d "$d" ] && cp "$d"* "$OUT/$(basename "$d")/" 2>/dev/null || true
done
du -sh "$OUT"/* | sed 's/^/seeds: /'
