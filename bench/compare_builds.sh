#!/usr/bin/env bash
# Two builds of alibi timed against each other in one sitting: each measurement runs the base
# build, then the new one, ROUNDS times (A B A B ...), so a change of load on a shared machine
# hits both. Prints every run's figure and, per figure, the medians, and the median (with the
# range) of the per-round ratios new / base: each pair ran back to back, so its ratio is the
# least disturbed by a drift of the machine's speed.
#
#   bench/compare_builds.sh BASE_BUILD NEW_BUILD [ROUNDS (3)] [train|table|both (both)]
#
# train: bench_train's training step (tiny, small, or CONFIGS="tiny"; fp32, --steps 5, no
#        PyTorch).
# table: the alibi row of `alibi bench` (Table 1: tiny and small, T 128, 512, 2048; train and
#        eval tokens/s; one round per run, as every method's cells run too), with TABLE_ARGS
#        (default "--tokens 2048 --steps 2", the small table's settings in docs/positions.md).
set -euo pipefail
base=${1:?base build folder}
new=${2:?new build folder}
rounds=${3:-3}
what=${4:-both}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

record() {  # record NAME VALUE SIDE
  echo "$1 $2 $3" >> "$out/figures"
  printf '  %-28s %-4s %10s\n' "$1" "$3" "$2"
}

configs=${CONFIGS:-tiny small}  # bench_train configs
table_args=${TABLE_ARGS:---tokens 2048 --steps 2}

train_round() {  # train_round SIDE BUILD
  for cfg in $configs; do
    local tps
    tps=$("$2/bench/bench_train" --config "$cfg" --steps 5 --no-torch --dtype fp32 |
          awk -F'|' '$2 ~ /params/ {gsub(/ /, "", $4); print $4}')
    record "train_step_$cfg" "$tps" "$1"
  done
}

table_round() {  # table_round SIDE BUILD
  # shellcheck disable=SC2086
  "$2/alibi" bench --configs tiny,small --lengths 128,512,2048 --rounds 1 $table_args 2>/dev/null |
    awk -v side="$1" '/^### / {cfg = $2; sub(":", "", cfg)}
      $2 == "alibi" {gsub(/ /, "", $0); split($0, c, "|");
        print cfg "_T" c[3] "_train", c[4], side; print cfg "_T" c[3] "_eval", c[6], side}' |
    while read -r name value side; do record "$name" "$value" "$side"; done
}

for r in $(seq "$rounds"); do
  echo "round $r/$rounds ($(date -u +%H:%M:%S) UTC, load $(cut -d' ' -f1 /proc/loadavg))"
  for side in base new; do
    build=$base; [ "$side" = new ] && build=$new
    [ "$what" != table ] && train_round "$side" "$build"
    [ "$what" != train ] && table_round "$side" "$build"
  done
done

echo
echo "| figure (tokens/s) | base median | new median | new / base, median of rounds [min, max] |"
echo "|---|---:|---:|---:|"
python3 - "$out/figures" <<'EOF'
import statistics, sys
from collections import defaultdict
runs = defaultdict(lambda: defaultdict(list))
order = []
for line in open(sys.argv[1]):
    name, value, side = line.split()
    if name not in order: order.append(name)
    runs[name][side].append(float(value))
for name in order:
    base, new = runs[name]["base"], runs[name]["new"]
    ratios = [n / b for b, n in zip(base, new)]
    print(f"| {name} | {statistics.median(base):.0f} | {statistics.median(new):.0f} | "
          f"{statistics.median(ratios):.3f} [{min(ratios):.3f}, {max(ratios):.3f}] |")
EOF
