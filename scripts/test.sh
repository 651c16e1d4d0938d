#!/usr/bin/env bash
# Set-up plus the whole test suite: installs packages, builds (Release), installs the openai
# client for its test into build/openai-venv, runs ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The openai client of ServeOpenAI.Client (tests/test_serve_openai.py), pinned, in a venv of its
# own; where pip cannot reach PyPI that test is reported as skipped.
venv=build/openai-venv
if ! "$venv/bin/python" -c "import openai" 2>/dev/null; then
  python3 -m venv "$venv" && "$venv/bin/pip" install -q -r tests/requirements-openai.txt ||
    echo "scripts/test.sh: pip could not install tests/requirements-openai.txt;" \
      "ServeOpenAI.Client will be skipped" >&2
fi
ctest --test-dir build --output-on-failure -j"$(nproc)"
