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
