#!/usr/bin/env bash
# Set-up plus the main job on the bundled corpus: builds alibi, tokenises the default corpus
# (a public-domain novel shipped in data/) and trains a small ALiBi model on it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
work=out/quickstart
mkdir -p "$work"
xz -dc data/default-corpus.txt.xz > "$work/corpus.txt"
build/alibi prepare --input "$work/corpus.txt" --out "$work/data" --tokenizer bytes
build/alibi train --data "$work/data" --out "$work/run" --pos alibi --seq-len 128 \
  --layers 4 --d-model 256 --heads 8 --ffn 1024 --batch 16 --steps 300 --warmup 30 --lr 2e-3 \
  --eval-every 100 --save-every 100
