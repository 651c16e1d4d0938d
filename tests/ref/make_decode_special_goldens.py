"""Writes tests/golden/tokenizer/decode_special.json: what Hugging Face `tokenizers` decodes the
committed goldens' ids to when special tokens are kept (decode(ids, skip_special_tokens=False)),
which `alibi tokenize --decode --keep-special` must equal (tests/test_tokenize_cli.cpp). It reads
only committed files (the tokenizer.json files and their expected.json, tests/ref/
make_tokenizer_goldens.py); a reference only, never a dependency of alibi:

    /work/venv/bin/python tests/ref/make_decode_special_goldens.py      # from the repo root
"""
import json
import os

from tokenizers import Tokenizer

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GOLDEN = os.path.join(REPO, "tests", "golden", "tokenizer")
NAMES = ["bloom", "neox", "kitchen", "chars", "bytebpe"]
TEXTS = ["specials", "code", "unicode", "whitespace"]


def main():
    out = {}
    for name in NAMES:
        t = Tokenizer.from_file(os.path.join(GOLDEN, name + ".tokenizer.json"))
        with open(os.path.join(GOLDEN, name + ".expected.json")) as f:
            expected = json.load(f)
        out[name] = {}
        for text in TEXTS:
            ids = expected[text]["ids_special"]
            out[name][text] = {"ids": ids, "kept": t.decode(ids, skip_special_tokens=False),
                               "skipped": t.decode(ids, skip_special_tokens=True)}
    with open(os.path.join(GOLDEN, "decode_special.json"), "w") as f:
        json.dump(out, f, ensure_ascii=False, indent=0)
    for name in NAMES:
        print(name, {k: len(v["kept"]) for k, v in out[name].items()})


if __name__ == "__main__":
    main()
