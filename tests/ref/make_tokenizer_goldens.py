"""Writes the tokenizer goldens that tests/test_hf_tokenizer.cpp checks, with Hugging Face
`tokenizers` (PyPI; a reference only, never a dependency of alibi):

    python3 -m venv /tmp/tok && /tmp/tok/bin/pip install tokenizers
    /tmp/tok/bin/python tests/ref/make_tokenizer_goldens.py      # from the repo root

For each configuration below it trains a small byte-level (or character) BPE on a public-domain
novel from ../shared/data (TRAIN: Pride and Prejudice as shared/data has it, with a credit line
the bundled corpus lacks) plus the stress texts, and writes into tests/golden/tokenizer/:

  <name>.tokenizer.json   the tokenizer, as tokenizers saves it
  <name>.expected.json    for each stress text (texts/<text>.txt, raw bytes): "ids" =
                          encode(text, add_special_tokens=False), "ids_special" = encode(text)
                          (the post-processor's BOS/EOS), "decoded" = decode(ids) with special
                          tokens skipped, "roundtrip" = whether decode(ids) gives the text back
  <name>.novel.u16        (bloom, neox) the ids of a whole novel (NOVEL below, in tests/data),
                          uint16 LE

and "bytebpe": the tokenizer.json that `alibi prepare --tokenizer bytebpe --vocab 1000` trains
on tiny Shakespeare (tests/data; the alibi binary: ALIBI, default build/alibi), with the ids
Python's `tokenizers` gives for it: a file alibi writes must load there and encode identically.

Texts with ill-formed UTF-8 are encoded as Python reads them with errors="replace" (one U+FFFD
per maximal subpart), which is what alibi does with such bytes.
The configurations: "bloom" and "neox" copy BLOOM's and GPT-NeoX's (MPT's) tokenizer.json
pipelines; "kitchen" and "chars" exercise the rest of what alibi reads (normalizer sequences,
every Split behaviour, invert, string patterns, add_prefix_space, added-token lstrip/rstrip/
single_word, TemplateProcessing, ignore_merges; a character BPE with unk, fuse_unk,
continuing_subword_prefix and end_of_word_suffix and no decoder).
"""
import json
import lzma
import os
import shutil
import struct
import subprocess
import tempfile

from tokenizers import (AddedToken, Regex, Tokenizer, decoders, models, normalizers,
                        pre_tokenizers, processors, trainers)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(REPO, "tests", "golden", "tokenizer")
TRAIN = os.path.join(REPO, "..", "shared", "data", "gutenberg", "austen-pride_and_prejudice.txt")
TEST_DATA = os.path.join(REPO, "tests", "data")  # tests/ref/make_test_data.sh
NOVEL = os.path.join(TEST_DATA, "sherlock-holmes.txt.xz")
SHAKESPEARE = os.path.join(TEST_DATA, "tinyshakespeare.txt.xz")
VOCAB = 3000

TEXTS = {
    "unicode": "Café naïve façade Ærøskøbing Straße ﬁne ligature ① ２０２４ ｆｕｌｌ　ｗｉｄｔｈ Ω ℌ ㎏",
    "cjk": "東京は日本の首都です。北京，上海、香港。한국어 텍스트입니다 ひらがなカタカナ",
    "emoji": "👍🏽 👨‍👩‍👧‍👦 🇫🇷 ❤️ 🤖🚀 a😀b",
    "combining": "e\u0301 a\u0308 o\u0302\u0323 n\u0303 Z\u0351\u036b\u0343a\u0310l\u0352g\u033fo \u0301start",
    "rtl": "مرحبا بالعالم، كيف حالك؟ اردو۔ שלום עולם \u202eabc\u202c \u200fRLM",
    "zero_width": "a\u200db\u200cc\u200bd\ufeffe\u2060f 👩\u200d💻",
    "whitespace": "  leading\n\n\n  trailing   \t\ttabs\r\n\r\nwin  \u00a0nbsp\u3000ideo \n \n" +
                  " " * 30 + "x" + "\n" * 12 + "\t" * 5 + "end  ",
    "digits": "1234567890 3.14159 1,000,000 ٣٤٥ ১২৩ 2024-12-02 0x1F 12th 007",
    "punctuation": "Hello… world。 你好，世界、 नमस्ते। اردو۔ عربي، (paren) [br] {c} a|b ?! ... "
                   "«quotes» “curly” — dash – en ``tex'' 'single'",
    "specials": "<s>Hello</s> <pad><unk> <|endoftext|>text<|padding|> x <mask> y [SEP]  z "
                "cat concat cats <s></s>",
    "code": "def f(x):\n    return x ** 2  # comment\n\tif y != 0: z = y\nI'm can't we'll "
            "they've she'd it's 'S 'T 'RE\n",
    "empty": "",
}
INVALID = {  # raw bytes that are not well-formed UTF-8
    "invalid_utf8": b"ok \xff\xfe bad \xc3( \xe2\x82 x \xf0\x9f\x98 y \xed\xa0\x80 z \xc0\xaf "
                    b"\xf4\x90\x80\x80 end \xe2",
}


def bloom():
    t = Tokenizer(models.BPE(unk_token="<unk>"))
    t.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(" ?[^(\\s|[.,!?…。，、।۔،])]+"), "isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    t.decoder = decoders.ByteLevel()
    t.post_processor = processors.ByteLevel(trim_offsets=False)
    return t, ["<unk>", "<s>", "</s>", "<pad>"], True


def neox():
    t = Tokenizer(models.BPE())
    t.normalizer = normalizers.NFC()
    t.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True)
    t.decoder = decoders.ByteLevel()
    t.post_processor = processors.ByteLevel(trim_offsets=False)
    return t, ["<|endoftext|>", "<|padding|>"], True


def kitchen():
    t = Tokenizer(models.BPE())
    t.normalizer = normalizers.Sequence([
        normalizers.NFKC(), normalizers.Replace("``", '"'), normalizers.Replace(Regex("\t+"), " ")])
    t.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex("\\d"), "isolated"),
        pre_tokenizers.Split(" ", "merged_with_next"),
        pre_tokenizers.Split(Regex("[,;]"), "removed"),
        pre_tokenizers.Split(Regex("\\n+"), "merged_with_previous"),
        pre_tokenizers.Split(Regex("[a-z]+"), "contiguous", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)])
    t.decoder = decoders.ByteLevel()
    t.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 1), ("</s>", 2)])
    return t, ["<pad>", "<s>", "</s>"], True


def chars():
    t = Tokenizer(models.BPE(unk_token="[UNK]", fuse_unk=True, continuing_subword_prefix="##",
                             end_of_word_suffix="</w>"))
    t.normalizer = normalizers.NFKD()
    t.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex("\\s+"), "removed"),
        pre_tokenizers.Split(Regex("\\p{P}"), "isolated")])
    return t, ["[UNK]", "[CLS]", "[SEP]"], False


def added(name):
    """Added tokens of each configuration, beyond the trainer's special tokens."""
    if name == "neox":  # GPT-NeoX's runs of spaces: normalized, not special
        return [AddedToken(" " * n, normalized=True, special=False) for n in (2, 3, 4, 8)]
    if name == "kitchen":
        return [AddedToken("<mask>", lstrip=True, special=True, normalized=False),
                AddedToken("[SEP]", rstrip=True, special=True, normalized=False),
                AddedToken("cat", single_word=True, normalized=True, special=False)]
    return []


def train(name, make, corpus):
    t, specials, byte_level = make()
    kw = dict(vocab_size=VOCAB, special_tokens=specials, show_progress=False)
    if byte_level:
        kw["initial_alphabet"] = pre_tokenizers.ByteLevel.alphabet()
    else:
        kw.update(limit_alphabet=120, continuing_subword_prefix="##", end_of_word_suffix="</w>")
    t.train_from_iterator(corpus, trainers.BpeTrainer(**kw))
    for a in added(name):
        t.add_special_tokens([a]) if a.special else t.add_tokens([a])
    if name == "kitchen":  # ignore_merges is not a trainer option: set it in the file
        j = json.loads(t.to_str())
        j["model"]["ignore_merges"] = True
        t = Tokenizer.from_str(json.dumps(j))
    return t


def alibi_bytebpe():
    """The byte-level BPE alibi trains, loaded by tokenizers (the file is written as alibi wrote it)."""
    alibi = os.environ.get("ALIBI", os.path.join(REPO, "build", "alibi"))
    with tempfile.TemporaryDirectory() as tmp:
        corpus = os.path.join(tmp, "shakespeare.txt")
        with lzma.open(SHAKESPEARE) as src, open(corpus, "wb") as dst:
            dst.write(src.read())
        subprocess.run([alibi, "--threads", "1", "prepare", "--input", corpus, "--out",
                        os.path.join(tmp, "data"), "--tokenizer", "bytebpe", "--vocab", "1000"],
                       check=True, stdout=subprocess.DEVNULL)
        shutil.copy(os.path.join(tmp, "data", "hf-tokenizer.json"),
                    os.path.join(OUT, "bytebpe.tokenizer.json"))
    return Tokenizer.from_file(os.path.join(OUT, "bytebpe.tokenizer.json"))


def write_expected(name, t, texts):
    expected = {}
    for k, raw in texts.items():
        text = raw.decode("utf-8", errors="replace")
        ids = t.encode(text, add_special_tokens=False).ids
        expected[k] = {"ids": ids, "ids_special": t.encode(text).ids,
                       "decoded": t.decode(ids, skip_special_tokens=True),
                       "roundtrip": t.decode(ids, skip_special_tokens=False) == text}
    with open(os.path.join(OUT, name + ".expected.json"), "w") as f:
        json.dump(expected, f, ensure_ascii=False, indent=0)
    return expected


def main():
    os.makedirs(os.path.join(OUT, "texts"), exist_ok=True)
    texts = {k: v.encode("utf-8") for k, v in TEXTS.items()}
    texts.update(INVALID)
    for k, raw in texts.items():
        with open(os.path.join(OUT, "texts", k + ".txt"), "wb") as f:
            f.write(raw)
    with open(TRAIN, encoding="utf-8") as f:
        corpus = f.read().split("\n") + list(TEXTS.values()) * 3
    with lzma.open(NOVEL, "rt", encoding="utf-8") as f:
        novel = f.read()
    for name, make in [("bloom", bloom), ("neox", neox), ("kitchen", kitchen), ("chars", chars)]:
        t = train(name, make, corpus)
        t.save(os.path.join(OUT, name + ".tokenizer.json"), pretty=False)
        t = Tokenizer.from_file(os.path.join(OUT, name + ".tokenizer.json"))  # as alibi reads it
        expected = write_expected(name, t, texts)
        if name in ("bloom", "neox"):
            ids = t.encode(novel, add_special_tokens=False).ids
            with open(os.path.join(OUT, name + ".novel.u16"), "wb") as f:
                f.write(struct.pack(f"<{len(ids)}H", *ids))
            print(f"{name}: {len(ids)} novel tokens")
        print(f"{name}: vocab {t.get_vocab_size()}, " +
              ", ".join(f"{k} {len(v['ids'])}" for k, v in expected.items()))
    t = alibi_bytebpe()
    expected = write_expected("bytebpe", t, texts)
    print(f"bytebpe (trained by alibi): vocab {t.get_vocab_size()}, " +
          ", ".join(f"{k} {len(v['ids'])}" for k, v in expected.items()))


if __name__ == "__main__":
    main()
