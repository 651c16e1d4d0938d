#!/usr/bin/env bash
# The study of docs/results.md: "train short, test long" on WikiText-2 (bytes; training lengths
# 64 and 256; nonoverlapping and sliding evaluation) and on Gutenberg novels (bytes; training
# length 128), six position methods each, plus the per-position loss curves.
#
#   bash scripts/study.sh [WORK]      (WORK defaults to out/study; build alibi first)
#
# Runs two single-threaded processes at a time (JOBS, THREADS below), so it uses two cores.
# Finished runs and evaluations in WORK are reused: rerunning continues an interrupted study.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-out/study}
JOBS=${JOBS:-2}
THREADS=${THREADS:-1}
ALIBI=${ALIBI:-build/alibi}  # a copy keeps a long study safe from rebuilds of build/
SHARED=${SHARED:-../shared/data}
mkdir -p "$WORK"
t0=$(date +%s)

# Same model for every run: 2 layers, d_model 128, 8 heads, ffn 512.
MODEL="--layers 2 --d-model 128 --heads 8 --ffn 512 --lr 2e-3 --seed 1337"
COMMON="--alibi $ALIBI --jobs $JOBS --threads $THREADS --factors 1,2,4,8,16,32 --modes nonoverlapping,sliding"

# 1. WikiText-2 as bytes. (With BPE 8192 and this budget the sinusoidal model does not get past
# unigram statistics; see docs/results.md.)
[ -d "$WORK/wt2-bytes" ] || $ALIBI prepare --input "$SHARED/wikitext-2" --out "$WORK/wt2-bytes" \
  --tokenizer bytes
# 800 steps x 2048 tokens = 1,638,400 bytes per run at either length.
python3 scripts/experiment.py --data "$WORK/wt2-bytes" --out "$WORK/wt2-L64" --seq-len 64 \
  --batch 32 --steps 800 --warmup 80 $MODEL $COMMON \
  --max-tokens 32768 --sliding-max-tokens 8192 --title "WikiText-2 (bytes), trained at 64"
python3 scripts/experiment.py --data "$WORK/wt2-bytes" --out "$WORK/wt2-L256" --seq-len 256 \
  --batch 8 --steps 800 --warmup 80 $MODEL $COMMON \
  --max-tokens 32768 --sliding-max-tokens 16384 --title "WikiText-2 (bytes), trained at 256"

# 2. Gutenberg: 15 novels to train on, two held-out novels for valid and test; bytes.
G="$SHARED/gutenberg"
if [ ! -d "$WORK/gutenberg-bytes" ]; then
  mkdir -p "$WORK/gutenberg-text"
  ls "$G"/*.txt | grep -v -e tale_of_two_cities -e huckleberry_finn | xargs cat \
    > "$WORK/gutenberg-text/train.txt"
  cp "$G/dickens-tale_of_two_cities.txt" "$WORK/gutenberg-text/valid.txt"
  cp "$G/twain-huckleberry_finn.txt" "$WORK/gutenberg-text/test.txt"
  $ALIBI prepare --input "$WORK/gutenberg-text" --out "$WORK/gutenberg-bytes" --tokenizer bytes
fi
# 600 steps x 2048 tokens = 1,228,800 bytes per run.
python3 scripts/experiment.py --data "$WORK/gutenberg-bytes" --out "$WORK/gutenberg-L128" \
  --seq-len 128 --batch 16 --steps 600 --warmup 60 $MODEL --alibi $ALIBI --jobs $JOBS \
  --threads $THREADS --factors 1,2,4,8,16,32 --modes nonoverlapping --max-tokens 65536 \
  --title "Gutenberg novels (bytes), trained at 128"

# 3. The early-token curse: mean loss at each position of nonoverlapping windows.
for m in alibi sinusoidal; do
  f="$WORK/wt2-L256/positions-$m.csv"
  [ -f "$f" ] || $ALIBI --threads $THREADS eval "$WORK/wt2-L256/runs/$m-L256" \
    --data "$WORK/wt2-bytes" --lengths 256,1024 --max-tokens 32768 --per-position "$f" >/dev/null
done

python3 scripts/plot_positions.py alibi="$WORK/wt2-L256/positions-alibi.csv" \
  sinusoidal="$WORK/wt2-L256/positions-sinusoidal.csv" --out "$WORK/positions.png" \
  --title "WikiText-2 (bytes), trained at 256: mean loss by position in nonoverlapping windows"

# 4. One figure with every WikiText-2 panel.
python3 scripts/plot.py "$WORK/wt2-L64/results.csv" "$WORK/wt2-L256/results.csv" \
  --out "$WORK/wt2.png" --title "WikiText-2 (bytes): perplexity against evaluation length"
echo "study: done in $(( $(date +%s) - t0 )) s; results in $WORK"
