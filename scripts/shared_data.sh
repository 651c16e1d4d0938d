# Sourced by the scripts that read the big corpora kept beside the clone, not in it (SHARED,
# default ../shared/data: WikiText-2, the Gutenberg novels); the test suite needs none of them.
SHARED=${SHARED:-../shared/data}

# Exits with one line naming SHARED/$1 when it is missing, before any work that needs it.
require_shared() {
  if [ ! -e "$SHARED/$1" ]; then
    echo "$(basename "$0"): $SHARED/$1 is missing: this script needs the shared corpora" \
      "beside the clone (set SHARED to their data folder)" >&2
    exit 1
  fi
}

# The study's Gutenberg split as bytes in $1/gutenberg-bytes (alibi binary $2): 15 novels to
# train on, A Tale of Two Cities to validate, Huckleberry Finn to test. Kept when present.
prepare_gutenberg() {
  local work=$1 alibi=$2 g="$SHARED/gutenberg"
  [ -d "$work/gutenberg-bytes" ] && return 0
  require_shared gutenberg
  mkdir -p "$work/gutenberg-text"
  ls "$g"/*.txt | grep -v -e tale_of_two_cities -e huckleberry_finn | xargs cat \
    > "$work/gutenberg-text/train.txt"
  cp "$g/dickens-tale_of_two_cities.txt" "$work/gutenberg-text/valid.txt"
  cp "$g/twain-huckleberry_finn.txt" "$work/gutenberg-text/test.txt"
  "$alibi" prepare --input "$work/gutenberg-text" --out "$work/gutenberg-bytes" --tokenizer bytes
}
