#!/usr/bin/env bash
# Fixed against trainable ALiBi slopes (issue 14; docs/encoder.md): the study's model and budget
# at L = 64 (scripts/study.sh, WikiText-2 BPE 8192, 1,500 steps of 32 x 64 tokens, the
# learning rate its sweep chose for alibi, 8e-3), once with the paper's slopes and once with
# --slopes trainable; both evaluated on test at 1x..16x L, nonoverlapping (16,384 tokens) and
# sliding with stride L (4,096 tokens); the learned slopes per head plotted against the fixed.
#
#   bash scripts/slopes_study.sh [WORK]     (WORK defaults to out/slopes; build alibi first)
#
# DATA=... uses a prepared WikiText-2 BPE 8192 folder (the study's WORK/wt2-bpe8192); without it
# the script prepares one from SHARED (../shared/data). Finished runs and evaluations are reused.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-out/slopes}
ALIBI=${ALIBI:-build/alibi}
source scripts/shared_data.sh
THREADS=${THREADS:-1}
mkdir -p "$WORK"
DATA=${DATA:-$WORK/wt2-bpe8192}
[ -d "$DATA" ] || require_shared wikitext-2
[ -d "$DATA" ] || $ALIBI prepare --input "$SHARED/wikitext-2" --out "$DATA" --tokenizer bpe \
  --vocab 8192
MODEL="--layers 2 --d-model 128 --heads 8 --ffn 512 --seed 1337 --seq-len 64 --batch 32"
for slopes in fixed trainable; do
  run="$WORK/alibi-$slopes"
  [ -f "$run/ckpt-000001500.safetensors" ] || $ALIBI --threads "$THREADS" train --data "$DATA" \
    --out "$run" --pos alibi --slopes "$slopes" $MODEL --steps 1500 --lr 8e-3 --warmup 150 \
    --eval-every 0 --save-every 250 --log-every 150 --keep 1
  [ -f "$run/eval-nonoverlapping.json" ] || $ALIBI --threads "$THREADS" eval "$run" \
    --data "$DATA" --split test --lengths 64,128,256,512,1024 --max-tokens 16384 \
    --json "$run/eval-nonoverlapping.json"
  [ -f "$run/eval-sliding.json" ] || $ALIBI --threads "$THREADS" eval "$run" --data "$DATA" \
    --split test --lengths 128,256,512,1024 --mode sliding --stride 64 --max-tokens 4096 \
    --json "$run/eval-sliding.json"
done
python3 scripts/plot_slopes.py "$WORK/alibi-fixed" "$WORK/alibi-trainable" \
  --out "$WORK/slopes.png" --table "$WORK/slopes.md"
