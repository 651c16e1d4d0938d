#!/usr/bin/env bash
# The methods after ALiBi (issue 29) in the three settings of the study (docs/results.md), each
# with the same model, optimiser, tokens and test split as the six methods of the main study:
# - gutenberg: bytes, L = 128, 1,000 steps of 16 x 128, evaluated to 32 L on Huckleberry Finn;
# - wt2: WikiText-2 (BPE 8192) at L = 64 (1,500 steps of 32 x 64, to 32 L) and L = 256 (1,500
#   steps of 8 x 256, to 16 L), nonoverlapping and sliding evaluation, and at 256 the mean loss
#   by position in the window (the main study's early-token analysis).
# Each method is trained once at LR, the rate the main study's sweep chose for five of its six
# methods (8e-3); the six are in its record (docs/runs/study). LRS=a,b,c tunes them as the main
# study tunes its six (scripts/study.sh): each rate on WikiText-2 at L = 64, scored at L on the
# validation split (a best rate at the edge of LRS also tries twice or half of it), and each
# method's best rate trains it at L = 256 and on Gutenberg. So with LRS, SETTINGS needs wt2 (or
# WORK a finished wt2-L64-successors).
#
#   bash scripts/study_successors.sh [WORK]   (WORK defaults to out/study; build alibi first)
#
# SETTINGS=gutenberg,wt2 (the default) picks the settings. Needs ../shared/data/gutenberg and
# ../shared/data/wikitext-2 (scripts/shared_data.sh names one when it is missing). Finished runs
# and evaluations in WORK are reused: rerunning continues an interrupted study.
# RECORD=DIR keeps the record as scripts/study.sh does (docs/runs/successors for the doc).
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-out/study}
JOBS=${JOBS:-2}
THREADS=${THREADS:-1}
ALIBI=${ALIBI:-build/alibi}
LR=${LR:-8e-3}
LRS=${LRS:-}
METHODS=${METHODS:-kerple-log,kerple-power,sandwich,fire,xpos}
GSTEPS=${GSTEPS:-1000}
STEPS=${STEPS:-1500}
SETTINGS=${SETTINGS:-gutenberg,wt2}
RECORD=${RECORD:-}
source scripts/shared_data.sh
mkdir -p "$WORK"
has() { [[ ",$SETTINGS," == *",$1,"* ]]; }
save() { [ -z "$RECORD" ] || python3 scripts/study_record.py save "$WORK" "$RECORD"; }
# Each corpus is checked now, not hours later when its part starts.
if has gutenberg; then [ -d "$WORK/gutenberg-bytes" ] || require_shared gutenberg; fi
if has wt2; then [ -d "$WORK/wt2-bpe8192" ] || require_shared wikitext-2; fi
[ -z "$RECORD" ] || python3 scripts/study_record.py restore "$RECORD" "$WORK"
MODEL="--layers 2 --d-model 128 --heads 8 --ffn 512 --seed 1337 --methods $METHODS"
RATE="--lr $LR ${LRS:+--lrs $LRS --sweep-split valid} --split test --no-compare"
TUNED="--lrs-from $WORK/wt2-L64-successors/best.json --split test --no-compare"
RUN="--alibi $ALIBI --jobs $JOBS --threads $THREADS"
if [ -n "$LRS" ] && ! has wt2 && [ ! -f "$WORK/wt2-L64-successors/best.json" ]; then
  echo "study_successors: LRS tunes on WikiText-2 at L = 64; add wt2 to SETTINGS" >&2
  exit 2
fi

if has wt2; then
  # The main study's tokenizer: its BPE training is deterministic.
  [ -d "$WORK/wt2-bpe8192" ] || "$ALIBI" prepare --input "$SHARED/wikitext-2" \
    --out "$WORK/wt2-bpe8192" --tokenizer bpe --vocab 8192
  python3 scripts/experiment.py --data "$WORK/wt2-bpe8192" --out "$WORK/wt2-L64-successors" \
    --seq-len 64 --batch 32 --steps $STEPS --warmup $((STEPS / 10)) $MODEL $RATE $RUN \
    --factors 1,2,4,8,16,32 --modes nonoverlapping,sliding --max-tokens 16384 \
    --sliding-max-tokens 4096 --title "WikiText-2 (BPE 8192), trained at 64: the methods after ALiBi"
  save
fi

if has gutenberg; then
  prepare_gutenberg "$WORK" "$ALIBI"
  python3 scripts/experiment.py --data "$WORK/gutenberg-bytes" \
    --out "$WORK/gutenberg-L128-successors" --seq-len 128 --batch 16 --steps $GSTEPS \
    --warmup $((GSTEPS / 10)) $MODEL $([ -n "$LRS" ] && echo "$TUNED" || echo "$RATE") $RUN \
    --factors 1,2,4,8,16,32 --modes nonoverlapping --max-tokens 65536 \
    --title "Gutenberg novels (bytes), trained at 128: the methods after ALiBi"
  save
fi

if has wt2; then
  python3 scripts/experiment.py --data "$WORK/wt2-bpe8192" --out "$WORK/wt2-L256-successors" \
    --seq-len 256 --batch 8 --steps $STEPS --warmup $((STEPS / 10)) $MODEL $RUN \
    $TUNED \
    --factors 1,2,4,8,16 --modes nonoverlapping,sliding --max-tokens 16384 \
    --sliding-max-tokens 8192 --title "WikiText-2 (BPE 8192), trained at 256: the methods after ALiBi"
  save
  # The early-token curse, as the main study measures it for ALiBi and sinusoidal (study.sh, part
  # 3): mean loss at each position of windows of L and 4L, and of 4L sliding by L, trained at 256,
  # on the whole test split.
  W256="$WORK/wt2-L256-successors"
  specs=()
  for m in ${METHODS//,/ }; do
    run=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]]['run'])" \
          "$W256/best.json" "$m")
    f="$W256/positions-$m-nonoverlapping.csv"
    g="$W256/positions-$m-sliding.csv"
    [ -f "$f" ] && [ -f "$g" ] || \
      python3 scripts/study_record.py weights "$run" --alibi "$ALIBI" --threads "$THREADS" \
        --data "$WORK/wt2-bpe8192"
    [ -f "$f" ] || "$ALIBI" --threads "$THREADS" eval "$run" --data "$WORK/wt2-bpe8192" \
      --split test --lengths 256,1024 --per-position "$f" >/dev/null
    [ -f "$g" ] || "$ALIBI" --threads "$THREADS" eval "$run" --data "$WORK/wt2-bpe8192" \
      --split test --lengths 1024 --mode sliding --stride 256 --per-position "$g" >/dev/null
    specs+=("$m nonoverlapping=$f" "$m sliding (stride 256)=$g")
  done
  python3 scripts/plot_positions.py "${specs[@]}" --out "$W256/positions.png" \
    --table "$W256/positions.md" \
    --title "WikiText-2 (BPE 8192), trained at 256: mean loss by position in the window (test)"
  save
fi
