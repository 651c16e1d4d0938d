#!/usr/bin/env bash
# Fuzzes every loader of outside input with libFuzzer (tests/fuzz, docs/reliability.md#fuzzing).
#   scripts/fuzz.sh smoke          a fixed number of executions per target (FUZZ_RUNS, default
#                                  20000; tokenizer a fifth of it: each of its units builds a
#                                  whole tokenizer); exit 1 on any finding
#   scripts/fuzz.sh campaign S     each target S seconds, one process each, corpus and artifacts
#                                  kept in out/fuzz/<target>/; FUZZ_PARALLEL targets (default 1)
#                                  run side by side
#   scripts/fuzz.sh runs N         a campaign of N executions per target instead of a time (it can
#                                  be paused with SIGSTOP, e.g. during benchmarks, and resumed)
# Uses the sanitizer build (scripts/build_sanitize.sh, build-asan/) and makes the seeds
# (tests/fuzz/make_seeds.sh). Prints, per target, the executions done and the findings (crash-,
# leak-, timeout-, oom- files).
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-}
case "$MODE" in
  smoke) RUNS=${FUZZ_RUNS:-20000} ;;
  campaign) SECONDS_EACH=${2:?usage: scripts/fuzz.sh campaign SECONDS_PER_TARGET} ;;
  runs) RUNS=${2:?usage: scripts/fuzz.sh runs EXECUTIONS_PER_TARGET} ;;
  *) echo "usage: scripts/fuzz.sh smoke | campaign SECONDS_PER_TARGET | runs N" >&2; exit 2 ;;
esac
TARGETS=(${FUZZ_TARGETS:-safetensors checkpoint token_split tokenizer hf_config cli_lengths
                         serve_request gguf})
BUILD=build-asan
bash scripts/build_sanitize.sh > /dev/null

ROOT=out/fuzz
[ "$MODE" = smoke ] && ROOT=out/fuzz/smoke
bash tests/fuzz/make_seeds.sh "$BUILD/alibi" out/fuzz/seeds > /dev/null
# The scratch files the targets write per execution go to a tmpfs folder removed at the end.
export TMPDIR=$(mktemp -d /dev/shm/alibi-fuzz.XXXXXX 2>/dev/null || mktemp -d)
trap 'rm -rf "$TMPDIR"' EXIT

# One target: libFuzzer in one process; a finding stops it and leaves its input in DIR.
fuzz_one() {
  local t=$1 dir="$ROOT/$1"
  mkdir -p "$dir/corpus"
  [ "$MODE" = smoke ] && rm -rf "$dir/corpus" && mkdir -p "$dir/corpus"  # from the seeds alone
  local start=$SECONDS
  # -malloc_limit_mb: inputs are at most a few hundred KB; a loader asking for more than 512 MB
  # at once did not bound an allocation by the file's size. -timeout: a hang is a finding too.
  local limit
  if [ "$MODE" = smoke ]; then
    limit=-runs=$RUNS
    [ "$t" = tokenizer ] && limit=-runs=$((RUNS / 5))
  elif [ "$MODE" = runs ]; then
    limit=-runs=$RUNS
  else
    limit=-max_total_time=$SECONDS_EACH
  fi
  "$BUILD/tests/fuzz/fuzz_$t" "$limit" -dict="tests/fuzz/$t.dict" -malloc_limit_mb=512 \
    -rss_limit_mb=2048 -timeout=30 -print_final_stats=1 -artifact_prefix="$dir/" \
    "$dir/corpus" "out/fuzz/seeds/$t" > "$dir/$MODE.log" 2>&1 || true
  echo $((SECONDS - start)) > "$dir/$MODE.seconds"
}

pids=()
for t in "${TARGETS[@]}"; do
  rm -f "$ROOT/$t"/{crash,leak,timeout,oom}-* 2>/dev/null || true
  fuzz_one "$t" &
  pids+=($!)
  while [ "$(jobs -rp | wc -l)" -ge "${FUZZ_PARALLEL:-1}" ]; do sleep 1; done
done
wait "${pids[@]}"

failed=0
printf '%-12s %12s %8s  %s\n' target executions seconds findings
for t in "${TARGETS[@]}"; do
  dir="$ROOT/$t"
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/$MODE.log" | tail -1)
  findings=$(cd "$dir" && ls -d crash-* leak-* timeout-* oom-* 2>/dev/null | tr '\n' ' ' || true)
  printf '%-12s %12s %8s  %s\n' "$t" "${execs:-?}" "$(cat "$dir/$MODE.seconds")" \
    "${findings:-none}"
  if [ -n "$findings" ] || ! grep -q 'Done [0-9]* runs' "$dir/$MODE.log"; then
    failed=1
    echo "  $t: see $dir/$MODE.log; reproduce with $BUILD/tests/fuzz/fuzz_$t $dir/<file>"
  fi
done
exit $failed
