#!/usr/bin/env python3
"""The bad-input table of docs/bad-input.md (docs/reliability.md says how), made from what the
tests try.

    python3 scripts/bad_input_table.py [BUILD] > table.md

Runs the GoogleTest suite of BUILD (default build/) with ALIBI_BAD_INPUT_LOG set, so that
tests/cli.h logs every CLI run that ended with an error line (test, command, message, exit code),
and prints them as a markdown table, one row per distinct command and message, paths of the
tests' temporary folders shortened to T/ and the binary to `alibi`.
"""
import json
import os
import re
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def shorten(text, binary):
    text = text.replace(binary, "alibi")
    text = re.sub(r"/tmp/alibi_[A-Za-z0-9_]+?_\d+", "T", text)
    text = re.sub(r"/tmp/tmp[A-Za-z0-9_]+", "T", text)
    text = re.sub(r"pid \d+ on host \S+?\)", "pid PID on host HOST)", text)  # a run's holder
    return text.replace(REPO + "/", "").replace("|", "\\|")


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "build")
    binary = os.path.join(os.path.abspath(build), "alibi")
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "bad_input.jsonl")
        env = dict(os.environ, ALIBI_BAD_INPUT_LOG=log, OMP_WAIT_POLICY="passive")
        r = subprocess.run(["ctest", "--test-dir", build, "-j", str(os.cpu_count() or 1),
                            "-E", "Distributed|CrashCampaign|ExperimentScript"],
                           env=env, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit("bad_input_table.py: the tests failed; fix them first\n" + r.stdout[-3000:])
        rows = [json.loads(line) for line in open(log)] if os.path.exists(log) else []
    seen, out = set(), []
    for row in sorted(rows, key=lambda x: (x["test"], x["command"])):
        key = (row["command"], row["message"])
        if key in seen:
            continue
        seen.add(key)
        out.append(f"| {row['test']} | `alibi {shorten(row['command'], binary).strip()}` | "
                   f"{shorten(row['message'], binary)} | {row['code']} |")
    print(f"{len(out)} cases from {len({r['test'] for r in rows})} tests, every one a single "
          "error line.\n")
    print("| test | command | message | exit |")
    print("|---|---|---|---:|")
    print("\n".join(out))


if __name__ == "__main__":
    main()
