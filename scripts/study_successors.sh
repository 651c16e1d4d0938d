#!/usr/bin/env bash
# The methods after ALiBi (issue 29) in the study's Gutenberg setting (docs/results.md: bytes,
# L = 128, 1,000 steps of 16 x 128, the same model, optimiser and test split), each trained once
# at LR, the rate the main study's sweep chose for all six of its methods (8e-3), then evaluated
# to 32 L on Huckleberry Finn. The six methods of the main study are in its record
# (docs/runs/study); why this protocol is reduced is in docs/successors.md. LRS=a,b,c sweeps
# instead, scored at L on the validation novel (many more hours).
#
#   bash scripts/study_successors.sh [WORK]   (WORK defaults to out/study; build alibi first)
#
# Needs ../shared/data/gutenberg (scripts/shared_data.sh names it when it is missing). Finished
# runs and evaluations in WORK are reused: rerunning continues an interrupted study.
# RECORD=DIR keeps the record as scripts/study.sh does (docs/runs/successors for the doc).
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-out/study}
JOBS=${JOBS:-2}
THREADS=${THREADS:-1}
ALIBI=${ALIBI:-build/alibi}
LR=${LR:-8e-3}
LRS=${LRS:-}
METHODS=${METHODS:-kerple-log,kerple-power,sandwich,fire}
GSTEPS=${GSTEPS:-1000}
RECORD=${RECORD:-}
source scripts/shared_data.sh
mkdir -p "$WORK"
[ -z "$RECORD" ] || python3 scripts/study_record.py restore "$RECORD" "$WORK"
prepare_gutenberg "$WORK" "$ALIBI"
python3 scripts/experiment.py --data "$WORK/gutenberg-bytes" --out "$WORK/gutenberg-L128-successors" \
  --seq-len 128 --batch 16 --steps $GSTEPS --warmup $((GSTEPS / 10)) \
  --layers 2 --d-model 128 --heads 8 --ffn 512 --seed 1337 --methods "$METHODS" \
  --lr "$LR" ${LRS:+--lrs "$LRS" --sweep-split valid} --split test --no-compare \
  --alibi "$ALIBI" --jobs "$JOBS" --threads "$THREADS" --factors 1,2,4,8,16,32 \
  --modes nonoverlapping --max-tokens 65536 \
  --title "Gutenberg novels (bytes), trained at 128: the methods after ALiBi"
[ -z "$RECORD" ] || python3 scripts/study_record.py save "$WORK" "$RECORD"
