#!/usr/bin/env bash
# Writes tests/data/: the texts the test suite needs besides the bundled corpus
# (data/default-corpus.txt.xz), so that a clone is enough for its own tests. They come from the
# shared corpora, ../shared/data (SHARED), whose SOURCES.md names each file's origin and license;
# tests/data/README.md says which test reads which file and why.
#   bash tests/ref/make_test_data.sh      # from anywhere; xz from scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
SHARED=${SHARED:-../shared/data}
if [ ! -d "$SHARED" ]; then
  echo "tests/ref/make_test_data.sh: the shared corpora ($SHARED) are missing" >&2
  exit 1
fi
# WikiText's slice: enough for more than 100 of the ~4 KB parts HfNovel.WikiTextInPartsEqualsWhole
# cuts it into, with margin; cut after a whole line.
WIKITEXT_BYTES=540000

# -T1: one thread, so that the same input gives the same bytes.
pack() { xz -9e -T1 -c > "tests/data/$1"; }
pack tinyshakespeare.txt.xz < "$SHARED/tinyshakespeare.txt"
pack sherlock-holmes.txt.xz < "$SHARED/gutenberg/doyle-adventures_of_sherlock_holmes.txt"
head -c "$WIKITEXT_BYTES" "$SHARED/wikitext-2/test.txt" | sed '$d' | pack wikitext-2-test-head.txt.xz
ls -l tests/data/*.xz
