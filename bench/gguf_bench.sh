#!/usr/bin/env bash
# Decode and prompt speed of alibi against llama.cpp on the same GGUF files (docs/gguf.md): a
# BLOOM-560m-shaped model, or with SHAPE=mpt-1b an MPT-1B-shaped one (mosaicml's
# mpt-1b-redpajama-200b: d_model 2048, 24 layers, 1.3B parameters), both transformers' random
# initialisation (speed only, no perplexity), converted by llama.cpp's convert_hf_to_gguf.py to
# F16 and quantized by llama-quantize, each file
# imported by `alibi import FILE.gguf` (its blocks kept as they are). The same work on both sides,
# 2 threads each, alternating, under flock /tmp/alibi-bench.lock:
#   - pp512 and tg128 at depth 512: `alibi generate` on a prompt of exactly 512 tokens, then 128
#     greedy tokens; `llama-bench -p 512` and `llama-bench -n 128 -d 512`;
#   - tg128 at depth 1: `alibi generate --prompt The`, 128 tokens; `llama-bench -n 128` (its
#     first token starts from an empty cache).
# Each round also measures a streaming read (build/bench/bench_stream, 2 threads) and states the
# depth-1 decoders' speed as a fraction of the bandwidth limit: the file's bytes read per token.
#
#   LLAMA=/work/llama-build bash bench/gguf_bench.sh WORK [PRESETS]  # default "F16 Q8_0 Q4_0 Q4_K_M"
#   PREPARE_ONLY=1 ...   makes the files and imports, then stops (minutes; no timing)
#   DTYPES="fp32 int8 int8+spin"   alibi's --dtype values to time (the default: these three;
#                        +spin: OMP_WAIT_POLICY=active, threads spinning at barriers as
#                        llama.cpp's do, for a machine whose cores are the run's alone; without
#                        it, alibi's own default, 1,000 spins then sleep)
#   ALIBI=PATH           the alibi binary to time (default build/alibi), e.g. an older build's
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:?usage: gguf_bench.sh WORK [PRESETS]}
SHAPE=${SHAPE:-bloom-560m}
case "$SHAPE" in
  bloom-560m | mpt-1b) ;;
  *) echo "gguf_bench.sh: SHAPE=$SHAPE: expected bloom-560m or mpt-1b" >&2; exit 2 ;;
esac
PRESETS=${2:-"F16 Q8_0 Q4_0 Q4_K_M"}
LLAMA=${LLAMA:?set LLAMA to the folder of bench/llama_build.sh}
PY=${PYTHON:-/work/venv/bin/python}
ALIBI=$(realpath "${ALIBI:-build/alibi}")
[ -x "$ALIBI" ] || { echo "gguf_bench.sh: ALIBI=$ALIBI: not an executable file" >&2; exit 2; }
mkdir -p "$W"
if [ ! -f "$W/$SHAPE-f16.gguf" ]; then
  "$PY" - "$W" "$SHAPE" <<'PY'
import json, os, sys, torch
from transformers import BloomConfig, BloomForCausalLM, MptConfig, MptForCausalLM
w, shape = sys.argv[1], sys.argv[2]
torch.manual_seed(0)
if shape == "bloom-560m":
    m = BloomForCausalLM(BloomConfig(vocab_size=250880, hidden_size=1024, n_layer=24, n_head=16,
                                     seq_length=2048))
else:  # mpt-1b: mosaicml/mpt-1b-redpajama-200b's shape, 1.3B parameters
    m = MptForCausalLM(MptConfig(vocab_size=50432, d_model=2048, n_layers=24, n_heads=16,
                                 expansion_ratio=4, max_seq_len=2048))
family = "bloom" if shape == "bloom-560m" else "mpt"
hf = os.path.join(w, "hf-" + shape)
m.to(torch.bfloat16).save_pretrained(hf, safe_serialization=True)
tok = open(f"tests/golden/hf/{family}/tokenizer.json").read()
open(os.path.join(hf, "tokenizer.json"), "w").write(tok)
json.dump({"tokenizer_class": "PreTrainedTokenizerFast"},
          open(os.path.join(hf, "tokenizer_config.json"), "w"))
if family == "mpt":  # the converter knows MPT by MosaicML's own class name
    cfg = json.load(open(os.path.join(hf, "config.json")))
    cfg["architectures"] = ["MPTForCausalLM"]
    json.dump(cfg, open(os.path.join(hf, "config.json"), "w"))
PY
  PYTHONPATH="$LLAMA/src/vendor/llama.cpp:$LLAMA/src/vendor/llama.cpp/gguf-py" \
    "$PY" - "$W" "$SHAPE" <<'PY'
import sys
import conversion.base, convert_hf_to_gguf
conversion.base.TextModel.get_vocab_base_pre = lambda self, tokenizer: "gpt-2"
w, shape = sys.argv[1], sys.argv[2]
sys.argv = ["convert_hf_to_gguf.py", f"{w}/hf-{shape}", "--outtype", "f16", "--outfile",
            f"{w}/{shape}-f16.gguf", "--model-name", shape + "-shape"]
convert_hf_to_gguf.main()
PY
fi
for p in $PRESETS; do
  f="$W/$SHAPE-$(echo "$p" | tr A-Z a-z).gguf"
  [ -f "$f" ] || "$LLAMA/build/bin/llama-quantize" "$W/$SHAPE-f16.gguf" "$f" "$p" > /dev/null 2>&1
done
for p in $PRESETS; do
  name=$(echo "$p" | tr A-Z a-z)
  [ -d "$W/run-$SHAPE-$name" ] \
    || "$ALIBI" import "$W/$SHAPE-$name.gguf" --out "$W/run-$SHAPE-$name" > /dev/null
done
# The prompt: the first 512 tokens of the bundled corpus, as text (generate reports the count).
first=$(echo "$PRESETS" | awk '{print tolower($1)}')
(xz -dc data/default-corpus.txt.xz || true) | head -c 4000 > "$W/corpus-head.txt"
"$ALIBI" tokenize --tokenizer "$W/run-$SHAPE-$first" --no-special --text "$W/corpus-head.txt" \
  | awk '{for (i = 1; i <= NF && n < 512; ++i) {printf "%s ", $i; ++n}}' \
  | "$ALIBI" tokenize --tokenizer "$W/run-$SHAPE-$first" --decode > "$W/$SHAPE-prompt512.txt"
[ "${PREPARE_ONLY:-0}" = 1 ] && exit 0
rate() {  # "prompt: N tokens in ... (R tokens/s); decode: ..." -> the rate after $1
  awk -v key="$1" '{for (i = 1; i <= NF; ++i) if ($i == key) {t = $(i + 6); n = $(i + 1)}
                    gsub(/[(]/, "", t); print t, n}'
}
llama() {  # llama-bench's rows: test, depth, tokens/s
  flock /tmp/alibi-bench.lock "$LLAMA/build/bin/llama-bench" -m "$1" -t 2 -r 2 -o csv "${@:2}" \
    2>/dev/null | tr -d '"' | awk -F, 'NR == 1 {for (i = 1; i <= NF; ++i) c[$i] = i; next}
      {t = $c["n_prompt"] > 0 ? "pp" $c["n_prompt"] : "tg" $c["n_gen"]
       print t, "@ d" ($c["n_depth"] == "" ? 0 : $c["n_depth"]), $c["avg_ts"]}'
}
for p in $PRESETS; do
  name=$(echo "$p" | tr A-Z a-z)
  f="$W/$SHAPE-$name.gguf"
  gb=$(stat -c %s "$f" | awk '{print $1 / 1e9}')
  for round in 1 2; do
    echo "== $p round $round ($gb GB read per token)"
    bw=$(flock /tmp/alibi-bench.lock env OMP_NUM_THREADS=2 build/bench/bench_stream --mb 2048 \
         | grep -o '[0-9.]* GB/s' | head -1 | cut -d' ' -f1)
    fraction() { awk -v t="$1" -v b="$bw" -v g="$gb" 'BEGIN {printf "%.2f", t * g / b}'; }
    limit=$(awk -v b="$bw" -v g="$gb" 'BEGIN {printf "%.1f", b / g}')
    echo "streaming read: $bw GB/s, so at most $limit tokens/s"
    for dt in ${DTYPES:-fp32 int8 int8+spin}; do
      policy=()
      [ "${dt#*+}" = spin ] && policy=(OMP_WAIT_POLICY=active)
      run() {
        flock /tmp/alibi-bench.lock env "${policy[@]}" "$ALIBI" --threads 2 generate \
          "$W/run-$SHAPE-$name" \
          --dtype "${dt%+spin}" --max-new-tokens 128 --temperature 0 --chunk 512 "$@" 2>&1 \
          | grep -o 'prompt: .*decode: [^;]*'
      }
      long=$(run --prompt-file "$W/$SHAPE-prompt512.txt")
      short=$(run --prompt The)
      read -r pp n <<< "$(rate prompt: <<< "$long")"
      read -r tg_deep _ <<< "$(rate decode: <<< "$long")"
      read -r tg _ <<< "$(rate decode: <<< "$short")"
      echo "alibi --dtype $dt: pp$n $pp, tg128 @ d$n $tg_deep, tg128 @ d1 $tg tokens/s" \
        "(tg128 @ d1 at $(fraction "$tg") of the bandwidth limit)"
    done
    { llama "$f" -p 512 -n 128; llama "$f" -p 0 -n 128 -d 512; } | while read -r t at d r; do
      extra=""
      [ "$t $d" = "tg128 d0" ] && extra=" (at $(fraction "$r") of the bandwidth limit)"
      echo "llama.cpp: $t $at $d $r tokens/s$extra"
    done
  done
done
