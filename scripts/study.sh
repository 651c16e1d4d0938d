#!/usr/bin/env bash
# The study of docs/results.md: "train short, test long" on WikiText-2 (BPE 8192; training
# lengths 64 and 256; nonoverlapping and sliding evaluation) and on Gutenberg novels (bytes;
# training length 128), six position methods each, plus the per-position loss curves.
#
#   bash scripts/study.sh [WORK]      (WORK defaults to out/study; build alibi first)
#
# Runs two single-threaded processes at a time (JOBS, THREADS below), so it uses two cores.
# Finished runs and evaluations in WORK are reused: rerunning continues an interrupted study.
# An interrupted run continues from its last checkpoint (every sixth of its steps).
# RECORD=DIR keeps the study's record (scripts/study_record.py: every table, evaluation and
# training time, without the weights) in DIR: restored into WORK first, saved after each part,
# so that a study can go on from another machine. docs/runs/study is the record of
# docs/results.md: RECORD=docs/runs/study bash scripts/study.sh continues it.
# Each method is tuned (a learning-rate sweep at L = 64); it takes many hours on 2 cores
# (docs/results.md has the wall time). STEPS=... GSTEPS=... LRS=... change the budget or the
# sweep (into a fresh WORK: a run folder with other flags is refused).
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-out/study}
JOBS=${JOBS:-2}
THREADS=${THREADS:-1}
ALIBI=${ALIBI:-build/alibi}  # a copy keeps a long study safe from rebuilds of build/
source scripts/shared_data.sh
mkdir -p "$WORK"
t0=$(date +%s)
RECORD=${RECORD:-}
[ -z "$RECORD" ] || python3 scripts/study_record.py restore "$RECORD" "$WORK"
# Both corpora are checked now, not hours later when the second part starts.
[ -d "$WORK/wt2-bpe8192" ] || require_shared wikitext-2
[ -d "$WORK/gutenberg-bytes" ] || require_shared gutenberg
save() { [ -z "$RECORD" ] || python3 scripts/study_record.py save "$WORK" "$RECORD"; }

# Same model for every run: 2 layers, d_model 128, 8 heads, ffn 512, the default (fairseq)
# initialisation. Every method is tuned alike at L = 64: each learning rate of LRS (t5 also with
# each table scale of T5_SCALES; a method whose best rate is at the edge of LRS also tries twice
# or half that rate), scored at L on the validation split; the best setting of each
# method is then evaluated at every length on the test split (experiment.py, "Tuning"). The
# other studies train each method once, with its setting from that sweep (same tokens per step).
MODEL="--layers 2 --d-model 128 --heads 8 --ffn 512 --seed 1337"
LRS=${LRS:-4e-3,8e-3,1.6e-2}
T5_SCALES=${T5_SCALES:-1,30}
METHODS="--methods alibi,none,sinusoidal,t5,rotary,learned"  # none early: the budget's test
SWEEP="--lrs $LRS --t5-lr-scales $T5_SCALES --sweep-split valid --split test"
TUNED="--lrs-from $WORK/wt2-L64/best.json --split test"
COMMON="$METHODS --alibi $ALIBI --jobs $JOBS --threads $THREADS --modes nonoverlapping,sliding"

# 1. WikiText-2 with a BPE of 8,192 pieces (about 3.9 bytes per token).
[ -d "$WORK/wt2-bpe8192" ] || $ALIBI prepare --input "$SHARED/wikitext-2" --out "$WORK/wt2-bpe8192" \
  --tokenizer bpe --vocab 8192
# STEPS x 2048 tokens per run at either length.
STEPS=${STEPS:-1500}
python3 scripts/experiment.py --data "$WORK/wt2-bpe8192" --out "$WORK/wt2-L64" --seq-len 64 \
  --batch 32 --steps $STEPS --warmup $((STEPS / 10)) $MODEL $SWEEP $COMMON --factors 1,2,4,8,16,32 \
  --max-tokens 16384 --sliding-max-tokens 4096 --title "WikiText-2 (BPE 8192), trained at 64"
save
python3 scripts/experiment.py --data "$WORK/wt2-bpe8192" --out "$WORK/wt2-L256" --seq-len 256 \
  --batch 8 --steps $STEPS --warmup $((STEPS / 10)) $MODEL $TUNED $COMMON --factors 1,2,4,8,16 \
  --max-tokens 16384 --sliding-max-tokens 8192 --title "WikiText-2 (BPE 8192), trained at 256"
save

# 2. Gutenberg: 15 novels to train on, two held-out novels for valid and test; bytes.
prepare_gutenberg "$WORK" "$ALIBI"
# GSTEPS x 2048 bytes per run; settings from the WikiText-2 sweep (test: Huckleberry Finn).
GSTEPS=${GSTEPS:-1000}
python3 scripts/experiment.py --data "$WORK/gutenberg-bytes" --out "$WORK/gutenberg-L128" \
  --seq-len 128 --batch 16 --steps $GSTEPS --warmup $((GSTEPS / 10)) $MODEL $TUNED $METHODS \
  --alibi $ALIBI --jobs $JOBS --threads $THREADS --factors 1,2,4,8,16,32 --modes nonoverlapping --max-tokens 65536 \
  --title "Gutenberg novels (bytes), trained at 128"
save

# 3. The early-token curse: mean loss at each position of the window, ALiBi and sinusoidal
# trained at 256, in windows of L and 4L (nonoverlapping) and 4L sliding by L, on the whole test
# split (~950 windows of 256; each position's mean is over that many tokens).
W256="$WORK/wt2-L256"
specs=()
for m in alibi sinusoidal; do
  run=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]]['run'])" \
        "$W256/best.json" "$m")
  f="$W256/positions-$m-nonoverlapping.csv"
  g="$W256/positions-$m-sliding.csv"
  [ -f "$f" ] && [ -f "$g" ] || \
    python3 scripts/study_record.py weights "$run" --alibi "$ALIBI" --threads "$THREADS" \
      --data "$WORK/wt2-bpe8192"
  [ -f "$f" ] || $ALIBI --threads $THREADS eval "$run" --data "$WORK/wt2-bpe8192" --split test \
    --lengths 256,1024 --per-position "$f" >/dev/null
  [ -f "$g" ] || $ALIBI --threads $THREADS eval "$run" --data "$WORK/wt2-bpe8192" --split test \
    --lengths 1024 --mode sliding --stride 256 --per-position "$g" >/dev/null
  specs+=("$m nonoverlapping=$f" "$m sliding (stride 256)=$g")
done
python3 scripts/plot_positions.py "${specs[@]}" --out "$WORK/positions.png" --table "$WORK/positions.md" \
  --title "WikiText-2 (BPE 8192), trained at 256: mean loss by position in the window (test)"
save

# 4. One figure with every WikiText-2 panel.
python3 scripts/plot.py "$WORK/wt2-L64/results.csv" "$WORK/wt2-L256/results.csv" \
  --out "$WORK/wt2.png" --title "WikiText-2 (BPE 8192): perplexity against evaluation length"
echo "study: done in $(( $(date +%s) - t0 )) s; results in $WORK"
