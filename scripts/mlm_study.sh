#!/usr/bin/env bash
# Masked-LM encoders on WikiText-2 at L = 128 (issue 14; docs/encoder.md): does ALiBi's
# -m|i - j| extrapolate for encoders as its causal form does for decoders? Six position methods,
# the study's model (scripts/study.sh: 2 layers, d_model 128, 8 heads, ffn 512, BPE 8192) and
# token budget (1,500 steps of 2,048 tokens, here 16 x 128), BERT's masking (15%; 80/10/10),
# each method at the learning rate the causal study's sweep chose for it (docs/results.md).
# Every run is evaluated on the first 32,768 tokens of test at 1x..16x L, nonoverlapping, with
# the fixed masking of `alibi eval` (seed 1234): every length scores the same ~4,900 tokens.
#
#   bash scripts/mlm_study.sh [WORK]     (WORK defaults to out/mlm; build alibi first)
#
# DATA=... uses a prepared WikiText-2 BPE 8192 folder (the study's WORK/wt2-bpe8192); without it
# the script prepares one from SHARED (../shared/data). JOBS runs (default 2) train at once, one
# thread each. Finished runs and evaluations are reused.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-out/mlm}
ALIBI=${ALIBI:-build/alibi}
source scripts/shared_data.sh
JOBS=${JOBS:-2}
mkdir -p "$WORK"
DATA=${DATA:-$WORK/wt2-bpe8192}
[ -d "$DATA" ] || require_shared wikitext-2
[ -d "$DATA" ] || $ALIBI prepare --input "$SHARED/wikitext-2" --out "$DATA" --tokenizer bpe \
  --vocab 8192
MODEL="--objective mlm --layers 2 --d-model 128 --heads 8 --ffn 512 --seed 1337 --seq-len 128
  --batch 16 --steps 1500 --warmup 150 --dropout 0.0 --eval-every 0 --save-every 250
  --log-every 150 --keep 1"

one() {  # METHOD LR [FLAGS...]: train (or resume) and evaluate one method
  local pos=$1 lr=$2 run="$WORK/$1-L128"
  shift 2
  if [ ! -f "$run/ckpt-000001500.safetensors" ]; then
    local start=$SECONDS
    if [ -d "$run" ] && ls "$run"/ckpt-*.safetensors >/dev/null 2>&1; then
      $ALIBI --threads 1 train --resume "$run" --steps 1500 > "$run.log" 2>&1
    else
      $ALIBI --threads 1 train --data "$DATA" --out "$run" --pos "$pos" --lr "$lr" $MODEL "$@" \
        > "$run.log" 2>&1
    fi
    echo "[train] $pos: $((SECONDS - start)) s"
  fi
  local lengths=128,256,512,1024,2048
  [ "$pos" = learned ] && lengths=128  # its table ends at L
  [ -f "$run/eval.json" ] || $ALIBI --threads 1 eval "$run" --data "$DATA" --split test \
    --lengths "$lengths" --max-tokens 32768 --json "$run/eval.json" > "$run.eval.log" 2>&1
  echo "[eval] $pos: done"
}

methods=("alibi 0.008" "none 0.008" "sinusoidal 0.008" "t5 0.008 --t5-lr-scale 30"
         "rotary 0.008" "learned 0.016")
for m in "${methods[@]}"; do
  # shellcheck disable=SC2086
  one $m &
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do sleep 5; done
done
wait
python3 scripts/mlm_table.py "$WORK" > "$WORK/results.md"
cat "$WORK/results.md"
