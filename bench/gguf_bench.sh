#!/usr/bin/env bash
# Decode and prompt speed of alibi against llama.cpp on the same GGUF files (docs/gguf.md): a
# BLOOM-560m-shaped model (transformers' random initialisation: speed only, no perplexity)
# converted by llama.cpp's convert_hf_to_gguf.py to F16 and quantized by llama-quantize, each file
# imported by `alibi import FILE.gguf` (its blocks kept as they are) and run by
# `alibi generate` (a 512-token prompt, then 128 greedy tokens) and by `llama-bench -p 512 -n 128`,
# 2 threads each, alternating, under flock /tmp/alibi-bench.lock. Each round also measures a
# streaming read (build/bench/bench_stream, 2 threads) and states both decoders' speed as a
# fraction of the bandwidth limit: the file's bytes read once per token.
#
#   LLAMA=/work/llama-build bash bench/gguf_bench.sh WORK [PRESETS]  # default "F16 Q8_0 Q4_0 Q4_K_M"
#   PREPARE_ONLY=1 ...   makes the files and imports, then stops (minutes; no timing)
#   DTYPES="fp32 int8 int8+spin"   alibi's --dtype values to time (the default: these three;
#                        +spin: OMP_WAIT_POLICY=active, threads spinning at barriers as
#                        llama.cpp's do, for a machine whose cores are the run's alone)
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:?usage: gguf_bench.sh WORK [PRESETS]}
PRESETS=${2:-"F16 Q8_0 Q4_0 Q4_K_M"}
LLAMA=${LLAMA:?set LLAMA to the folder of bench/llama_build.sh}
PY=${PYTHON:-/work/venv/bin/python}
ALIBI=$(realpath build/alibi)
mkdir -p "$W"
if [ ! -f "$W/bloom-560m-f16.gguf" ]; then
  "$PY" - "$W" <<'PY'
import json, os, sys, torch
from transformers import BloomConfig, BloomForCausalLM
w = sys.argv[1]
torch.manual_seed(0)
m = BloomForCausalLM(BloomConfig(vocab_size=250880, hidden_size=1024, n_layer=24, n_head=16,
                                 seq_length=2048)).to(torch.bfloat16)
m.save_pretrained(os.path.join(w, "hf"), safe_serialization=True)
tok = open("tests/golden/hf/bloom/tokenizer.json").read()
open(os.path.join(w, "hf", "tokenizer.json"), "w").write(tok)
json.dump({"tokenizer_class": "PreTrainedTokenizerFast"},
          open(os.path.join(w, "hf", "tokenizer_config.json"), "w"))
PY
  PYTHONPATH="$LLAMA/src/vendor/llama.cpp:$LLAMA/src/vendor/llama.cpp/gguf-py" "$PY" - "$W" <<'PY'
import sys
import conversion.base, convert_hf_to_gguf
conversion.base.TextModel.get_vocab_base_pre = lambda self, tokenizer: "gpt-2"
w = sys.argv[1]
sys.argv = ["convert_hf_to_gguf.py", w + "/hf", "--outtype", "f16", "--outfile",
            w + "/bloom-560m-f16.gguf", "--model-name", "bloom-560m-shape"]
convert_hf_to_gguf.main()
PY
fi
for p in $PRESETS; do
  f="$W/bloom-560m-$(echo "$p" | tr A-Z a-z).gguf"
  [ -f "$f" ] || "$LLAMA/build/bin/llama-quantize" "$W/bloom-560m-f16.gguf" "$f" "$p" > /dev/null 2>&1
done
(xz -dc data/default-corpus.txt.xz || true) | head -c 1300 > "$W/prompt.txt"
for p in $PRESETS; do
  name=$(echo "$p" | tr A-Z a-z)
  [ -d "$W/run-$name" ] || "$ALIBI" import "$W/bloom-560m-$name.gguf" --out "$W/run-$name" > /dev/null
done
[ "${PREPARE_ONLY:-0}" = 1 ] && exit 0
for p in $PRESETS; do
  name=$(echo "$p" | tr A-Z a-z)
  f="$W/bloom-560m-$name.gguf"
  gb=$(stat -c %s "$f" | awk '{print $1 / 1e9}')
  for round in 1 2; do
    echo "== $p round $round ($gb GB read per token)"
    bw=$(flock /tmp/alibi-bench.lock env OMP_NUM_THREADS=2 build/bench/bench_stream --mb 2048 \
         | grep -o '[0-9.]* GB/s' | head -1 | cut -d' ' -f1)
    echo "streaming read: $bw GB/s, so at most $(awk -v b="$bw" -v g="$gb" 'BEGIN {printf "%.1f", b / g}') tokens/s"
    for dt in ${DTYPES:-fp32 int8 int8+spin}; do
      echo -n "alibi --dtype $dt: "
      wait_policy=passive
      [ "${dt#*+}" = spin ] && wait_policy=active
      flock /tmp/alibi-bench.lock env OMP_WAIT_POLICY=$wait_policy \
        "$ALIBI" --threads 2 generate "$W/run-$name" --dtype "${dt%+spin}" \
        --prompt-file "$W/prompt.txt" --max-new-tokens 128 --temperature 0 --chunk 512 2>&1 \
        | grep -o 'prompt: .*decode: [^;]*' \
        | awk -v b="$bw" -v g="$gb" '{printf "%s", $0; for (i = 1; i <= NF; ++i) if ($i == "decode:") t = $(i + 6);
            gsub(/[(]/, "", t); printf " (decode at %.2f of the bandwidth limit)\n", t * g / b}'
    done
    flock /tmp/alibi-bench.lock "$LLAMA/build/bin/llama-bench" -m "$f" -t 2 -p 512 -n 128 \
      -r 2 -o csv 2>/dev/null | tr -d '"' | awk -F, -v b="$bw" -v g="$gb" '
        NR == 1 {for (i = 1; i <= NF; ++i) c[$i] = i; next}
        {print "llama.cpp: pp", $c["n_prompt"], "tg", $c["n_gen"], $c["avg_ts"], "tokens/s"
         if ($c["n_gen"] > 0) printf "llama.cpp decode at %.2f of the bandwidth limit\n", $c["avg_ts"] * g / b}'
  done
done
