#!/usr/bin/env bash
# Set-up plus the main job: "train short, test long" on the bundled corpus. Builds alibi,
# tokenises the default corpus (a public-domain novel shipped in data/) into bytes, trains ALiBi
# and sinusoidal models at 64 tokens (and sinusoidal at 128 for the paper's second comparison),
# evaluates them at 1 to 32 times the training length, and prints the table and the plot's path.
# Every model is tuned alike: two learning rates each, the better one chosen at its own training
# length on the validation split; the tables score the test split.
# About 10 minutes on 2 cores, the build included. Results: out/quickstart/experiment/.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s)
bash scripts/setup.sh
work=out/quickstart
mkdir -p "$work"
if [ ! -f "$work/data/prepare.json" ]; then
  xz -dc data/default-corpus.txt.xz > "$work/corpus.txt"
  build/alibi prepare --input "$work/corpus.txt" --out "$work/data" --tokenizer bytes
fi
# Two runs at a time, each on half the cores: small models use cores better this way than one
# run on all of them.
cores=$(nproc)
threads=$(( cores / 2 > 0 ? cores / 2 : 1 ))
# Debian's python3 is enough: experiment.py needs only the standard library, and finds a
# python3 with matplotlib for the plot.
python3 scripts/experiment.py --data "$work/data" --out "$work/experiment" \
  --methods alibi,sinusoidal --seq-len 64 --factors 1,2,4,8,16,32 \
  --layers 2 --d-model 128 --heads 8 --ffn 512 --batch 32 --steps 800 --warmup 80 \
  --lrs 4e-3,8e-3 --split test \
  --jobs 2 --threads "$threads" --title "Pride and Prejudice (bytes): trained at 64 tokens"
echo "quickstart: done in $(( $(date +%s) - t0 )) s"
