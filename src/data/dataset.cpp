// Prepared token files, `prepare` (text -> DIR/{train,valid,test}.tok + tokenizer) and batches.
#include "data/dataset.h"

#include <sys/stat.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "core/error.h"
#include "core/format.h"
#include "core/io.h"
#include "core/utf8.h"
#include "data/bytebpe_train.h"
#include "core/rng.h"

namespace alibi {

namespace fs = std::filesystem;

namespace {

// .tok layout (little-endian): [0,8) magic, [8,12) version u32, [12,16) vocab u32,
// [16,24) token count u64, [24,32) source byte count u64, [32,64) zero; then count u32 ids.
constexpr char kMagic[8] = {'A', 'L', 'I', 'B', 'I', 'T', 'O', 'K'};
constexpr uint32_t kVersion = 1;
constexpr size_t kHeaderBytes = 64;
constexpr int kPrepareFormat = 1;
// Parallel tokenisation hands each thread pieces of about this size, cut after a '\n'.

void put_u32(unsigned char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = uint8_t(v >> (8 * i));
}
void put_u64(unsigned char* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = uint8_t(v >> (8 * i));
}
uint32_t get_u32(const unsigned char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= uint32_t(p[i]) << (8 * i);
  return v;
}
uint64_t get_u64(const unsigned char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= uint64_t(p[i]) << (8 * i);
  return v;
}

// mkdtemp creates a private (0700) folder; prepared data should get the usual permissions, as
// if made by mkdir() under the process umask.
mode_t usual_mode(mode_t base) {
  const mode_t mask = ::umask(0);
  ::umask(mask);
  return base & ~mask;
}

// Byte offset of the first byte that breaks UTF-8 (overlong forms, surrogates and code points
// above U+10FFFF included), or npos for valid text.

bool blank(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
  });
}

// Rejects text that cannot be a corpus; `what` names it in the message.
void check_text(std::string_view text, const std::string& what) {
  if (blank(text))
    usage_error("corpus '", what, "' is empty", text.empty() ? "" : " (only whitespace)",
                "; expected UTF-8 text");
  if (size_t nul = text.find('\0'); nul != std::string_view::npos)
    usage_error("corpus '", what, "' has a NUL byte at offset ", nul,
                "; expected UTF-8 text, not a binary file");
  if (size_t bad = first_invalid_utf8(text); bad != std::string_view::npos)
    usage_error("corpus '", what, "' is not valid UTF-8 at byte offset ", bad,
                "; expected UTF-8 text (convert it, e.g. with iconv)");
}

struct SplitText {
  std::string name;    // train | valid | test
  std::string source;  // where it came from, for messages and prepare.json
  std::string_view text;
};

// The split a file in an input folder holds, from the dot-separated parts of its name:
// train.txt, valid, wiki.valid.tokens, validation.txt, test.raw, ...
std::optional<int> split_of(const fs::path& file) {
  static const std::array<std::string, 5> kExt = {"", "txt", "tokens", "raw", "text"};
  std::string name = file.filename().string();
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  std::vector<std::string> parts;
  std::stringstream ss(name);
  for (std::string part; std::getline(ss, part, '.');) parts.push_back(part);
  if (parts.empty()) return std::nullopt;
  std::string ext = parts.size() > 1 ? parts.back() : "";
  if (std::find(kExt.begin(), kExt.end(), ext) == kExt.end()) return std::nullopt;
  if (parts.size() > 1) parts.pop_back();
  for (const auto& part : parts) {
    if (part == "train") return 0;
    if (part == "valid" || part == "validation") return 1;
    if (part == "test") return 2;
  }
  return std::nullopt;
}

// Position just after the first '\n' at or after p (p itself if a line starts there).
size_t line_start_at_or_after(std::string_view text, size_t p) {
  if (p == 0 || p >= text.size()) return std::min(p, text.size());
  if (text[p - 1] == '\n') return p;
  size_t nl = text.find('\n', p);
  return nl == std::string_view::npos ? text.size() : nl + 1;
}

bool is_prepare_output(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return false;
  if (fs::is_empty(dir, ec)) return true;
  return fs::is_regular_file(dir / "prepare.json", ec);
}

// OUT must be new or empty; with `replace`, an earlier prepare output too (never anything else).
void check_out_free(const fs::path& out, bool replace) {
  std::error_code ec;
  if (!fs::exists(out, ec) || (fs::is_directory(out, ec) && fs::is_empty(out, ec))) return;
  if (!is_prepare_output(out))
    usage_error("--out '", out.string(), "' exists and is not a prepare output (no prepare.json); "
                "give a new or empty folder");
  if (!replace)
    usage_error("--out '", out.string(), "' holds prepared data already; give a new or empty "
                "folder, or --replace to prepare it again (runs trained on it would then "
                "evaluate on the new data)");
}

bool is_inside(const fs::path& child, const fs::path& parent) {
  std::error_code ec;
  fs::path c = fs::weakly_canonical(child, ec), p = fs::weakly_canonical(parent, ec);
  auto [pe, ce] = std::mismatch(p.begin(), p.end(), c.begin(), c.end());
  return pe == p.end();
}

}  // namespace

void save_split(const std::string& path, const std::vector<int32_t>& tokens, int vocab,
                uint64_t source_bytes) {
  ALIBI_CHECK(vocab > 0, "vocab ", vocab);
  std::vector<unsigned char> buf(kHeaderBytes + 4 * tokens.size(), 0);
  std::memcpy(buf.data(), kMagic, sizeof kMagic);
  put_u32(buf.data() + 8, kVersion);
  put_u32(buf.data() + 12, uint32_t(vocab));
  put_u64(buf.data() + 16, tokens.size());
  put_u64(buf.data() + 24, source_bytes);
  unsigned char* p = buf.data() + kHeaderBytes;
  for (size_t i = 0; i < tokens.size(); ++i) {
    ALIBI_CHECK(tokens[i] >= 0 && tokens[i] < vocab, "token ", tokens[i], " outside vocab ", vocab);
    put_u32(p + 4 * i, uint32_t(tokens[i]));
  }
  write_file_atomic(path,
                    {std::string_view(reinterpret_cast<const char*>(buf.data()), buf.size())});
}

TokenSplit load_split(const std::string& dir, const std::string& split) {
  TokenSplit s;
  s.path = (fs::path(dir) / (split + ".tok")).string();
  std::error_code ec;
  if (!fs::is_regular_file(s.path, ec))
    usage_error("split file '", s.path,
                "' does not exist; expected the output of 'alibi prepare' in '", dir, "'");
  const std::string raw = read_file(s.path, "split file");
  const uint64_t size = raw.size();
  const auto* h = reinterpret_cast<const unsigned char*>(raw.data());
  if (size < kHeaderBytes)
    usage_error("split file '", s.path, "' is ", size, " bytes, shorter than its ", kHeaderBytes,
                "-byte header; rerun 'alibi prepare'");
  if (std::memcmp(h, kMagic, sizeof kMagic) != 0)
    usage_error("split file '", s.path, "' does not start with ALIBITOK; expected a token file "
                "written by 'alibi prepare'");
  const uint32_t version = get_u32(h + 8);
  if (version != kVersion)
    usage_error("split file '", s.path, "' has format version ", version,
                "; this alibi reads version ", kVersion, "; rerun 'alibi prepare'");
  const uint32_t vocab = get_u32(h + 12);
  const uint64_t n = get_u64(h + 16);
  s.source_bytes = get_u64(h + 24);
  if (vocab == 0 || vocab > uint32_t(INT32_MAX))
    usage_error("split file '", s.path, "' has vocab ", vocab,
                " in its header; the file is corrupt");
  if (n > (size - kHeaderBytes) / 4 || size != kHeaderBytes + 4 * n)
    usage_error("split file '", s.path, "' is ", size, " bytes but its header promises ", n,
                " tokens (", kHeaderBytes + 4 * n, " bytes); it is truncated or corrupt, rerun "
                "'alibi prepare'");
  s.vocab = int(vocab);
  s.tokens.resize(n);
  for (uint64_t i = 0; i < n; ++i) {
    const uint32_t id = get_u32(h + kHeaderBytes + 4 * i);
    if (id >= vocab)
      usage_error("split file '", s.path, "' has token ", id, " at index ", i,
                  ", outside its vocab ", vocab, "; the file is corrupt, rerun 'alibi prepare'");
    s.tokens[i] = int32_t(id);
  }
  return s;
}

namespace {

// 1. The flags, before anything touches the disk; returns the output folder, absolute.
fs::path check_prepare_flags(const PrepareOptions& opts) {
  const std::optional<Tokenizer>& given = opts.tokenizer_given;  // --tokenizer-from
  if (!given && opts.tokenizer != "bytes" && opts.tokenizer != "bpe" && opts.tokenizer != "bytebpe")
    usage_error("unknown --tokenizer '", opts.tokenizer, "'; expected bytes, bpe or bytebpe");
  const bool bpe = !given && opts.tokenizer == "bpe";
  const bool bytebpe = !given && opts.tokenizer == "bytebpe";
  if (bpe && (opts.vocab < 300 || opts.vocab > (1 << 20)))  // as Tokenizer::train_bpe, but early
    usage_error("--vocab ", opts.vocab, " is out of range for the bpe tokenizer; expected 300..",
                1 << 20, " (256 ids go to byte fallback)");
  if (bytebpe && (opts.vocab < 258 || opts.vocab > (1 << 20)))  // as train_byte_level_bpe
    usage_error("--vocab ", opts.vocab,
                " is out of range for the bytebpe tokenizer; expected 258..", 1 << 20,
                " (257 ids go to <|endoftext|> and the bytes)");
  if (opts.input.empty()) usage_error("no input given; expected a text file or a folder");
  if (opts.out.empty()) usage_error("no output folder given");
  std::error_code ec;
  fs::path out = fs::absolute(opts.out, ec).lexically_normal();
  if (out.filename().empty()) out = out.parent_path();  // "dir/" -> "dir"
  check_out_free(out, opts.replace);
  if (is_inside(opts.input, out))  // replacing OUT would delete the input
    usage_error("input '", opts.input, "' lies inside output '", out.string(),
                "'; choose an output folder that does not contain the input");
  return out;
}

// 2. The three splits of the input: a folder's train/valid/test files, or one file cut at line
// boundaries by the fractions. `storage` owns the text the splits' views point into.
std::array<SplitText, 3> read_splits(const PrepareOptions& opts,
                                     std::array<std::string, 3>& storage) {
  std::array<SplitText, 3> splits = {SplitText{"train", "", {}}, SplitText{"valid", "", {}},
                                     SplitText{"test", "", {}}};
  const fs::path input(opts.input);
  std::error_code ec;
  if (!fs::exists(input, ec))
    usage_error("input '", opts.input, "' does not exist; expected a text file or a folder with "
                "train/valid/test text files");
  if (fs::is_directory(input, ec)) {
    std::array<std::vector<fs::path>, 3> found;
    for (const auto& e : fs::directory_iterator(input, ec))
      if (e.is_regular_file())
        if (auto k = split_of(e.path())) found[*k].push_back(e.path());
    for (int k = 0; k < 3; ++k) {
      if (found[k].empty())
        usage_error("input folder '", opts.input, "' has no ", splits[k].name, " file; expected ",
                    splits[k].name, ".txt (or ", splits[k].name, ", wiki.", splits[k].name,
                    ".tokens) next to the other splits");
      if (found[k].size() > 1) {
        std::sort(found[k].begin(), found[k].end());
        usage_error("input folder '", opts.input, "' has ", found[k].size(), " ", splits[k].name,
                    " files ('", found[k][0].filename().string(), "', '",
                    found[k][1].filename().string(), "'); expected exactly one");
      }
      storage[k] = read_file(found[k][0].string(), "corpus");
      splits[k].source = found[k][0].string();
      splits[k].text = storage[k];
      check_text(splits[k].text, splits[k].source);
    }
    return splits;
  }
  const double vf = opts.valid_fraction, tf = opts.test_fraction;
  if (!(vf > 0 && tf > 0 && vf + tf < 1))
    usage_error("--valid-fraction ", vf, " and --test-fraction ", tf,
                " must each be above 0 and sum to below 1");
  storage[0] = read_file(opts.input, "corpus");
  const std::string_view all = storage[0];
  check_text(all, opts.input);
  const size_t n = all.size();
  const size_t c1 = line_start_at_or_after(all, size_t(double(n) * (1 - vf - tf)));
  const size_t c2 = std::max(c1, line_start_at_or_after(all, size_t(double(n) * (1 - tf))));
  const size_t cuts[4] = {0, c1, c2, n};
  for (int k = 0; k < 3; ++k) {
    splits[k].source = opts.input;
    splits[k].text = all.substr(cuts[k], cuts[k + 1] - cuts[k]);
    if (blank(splits[k].text))
      usage_error("corpus '", opts.input, "' (", n, " bytes, ",
                  std::count(all.begin(), all.end(), '\n'), " lines) leaves the ", splits[k].name,
                  " split empty when cut at line boundaries by --valid-fraction ", vf,
                  " and --test-fraction ", tf, "; use a larger corpus with more lines");
  }
  return splits;
}

// 3a. The tokenizer: the one given, or one trained on the train split (a bpe model's training
// file, where the train split is only part of the input, is written into `tmp`).
Tokenizer make_tokenizer(const PrepareOptions& opts, const std::array<SplitText, 3>& splits,
                         const fs::path& tmp, int threads) {
  if (opts.tokenizer_given) return *opts.tokenizer_given;
  if (opts.tokenizer == "bytebpe")
    return Tokenizer::hf_from_json(train_byte_level_bpe(splits[0].text, opts.vocab, threads),
                                   "the trained bytebpe tokenizer");
  if (opts.tokenizer != "bpe") return Tokenizer::bytes();
  std::string train_path = splits[0].source;
  if (!fs::is_directory(opts.input)) {  // the train split is only part of the file
    train_path = (tmp / "bpe-train.txt").string();
    write_file_atomic(train_path, {splits[0].text});
  }
  Tokenizer tok;
  try {
    tok = Tokenizer::train_bpe(train_path, opts.vocab, threads);
  } catch (const UsageError& e) {  // name the user's file, not our temporary copy
    std::string msg = e.what();
    const std::string quoted = "'" + train_path + "'";
    if (size_t at = msg.find(quoted); at != std::string::npos)
      msg.replace(at, quoted.size(), str_cat("the train split of '", opts.input, "'"));
    throw UsageError(msg);
  }
  if (train_path != splits[0].source) fs::remove(train_path);
  return tok;
}

// 3b. The token files and prepare.json into `tmp`; returns each split's token count.
std::array<uint64_t, 3> write_splits(const PrepareOptions& opts, const Tokenizer& tok,
                                     const std::array<SplitText, 3>& splits, const fs::path& tmp,
                                     int threads, std::chrono::steady_clock::time_point t0) {
  std::error_code ec;
  tok.save_dir(tmp.string());
  nlohmann::json info;
  info["format"] = kPrepareFormat;
  info["input"] = fs::absolute(opts.input, ec).string();
  info["tokenizer"] = tokenizer_kind_name(tok.kind());
  if (opts.tokenizer_given) info["tokenizer_from"] = fs::absolute(opts.tokenizer_from, ec).string();
  info["vocab"] = tok.vocab();
  info["fingerprint"] = tok.fingerprint();
  std::array<uint64_t, 3> counts{};
  for (int k = 0; k < 3; ++k) {
    std::vector<int32_t> ids = tok.encode_parallel(splits[k].text, threads);
    counts[k] = ids.size();
    save_split((tmp / (splits[k].name + ".tok")).string(), ids, tok.vocab(),
               splits[k].text.size());
    info["splits"][splits[k].name] = {{"tokens", ids.size()},
                                      {"bytes", splits[k].text.size()},
                                      {"source", fs::absolute(splits[k].source, ec).string()}};
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  info["seconds"] = std::round(seconds * 100) / 100;
  write_file_atomic((tmp / "prepare.json").string(), {info.dump(2), "\n"});
  return counts;
}

// 3c. The complete folder into place: an earlier prepare output is moved aside first and removed
// after. Returns whether one was replaced.
bool swap_into_place(const fs::path& tmp, const fs::path& out, bool replace) {
  std::error_code ec;
  if (!fs::exists(out, ec)) {
    fs::rename(tmp, out);
    return false;
  }
  check_out_free(out, replace);  // the same rule for a folder made while we worked
  const bool replaced = !fs::is_empty(out, ec);
  const fs::path old = fs::path(tmp.string() + ".old");
  fs::rename(out, old);
  try {
    fs::rename(tmp, out);
  } catch (...) {
    fs::rename(old, out, ec);
    throw;
  }
  fs::remove_all(old, ec);
  return replaced;
}

}  // namespace

void prepare(const PrepareOptions& opts) {
  const auto t0 = std::chrono::steady_clock::now();
  const fs::path out = check_prepare_flags(opts);
  const int threads = opts.threads > 0 ? opts.threads : omp_get_max_threads();
  std::array<std::string, 3> storage;  // owns the text the split views point into
  const std::array<SplitText, 3> splits = read_splits(opts, storage);

  // 3. Build everything in OUT.tmp-XXXXXX and move it into place only when complete.
  std::error_code ec;
  if (!out.parent_path().empty()) fs::create_directories(out.parent_path(), ec);
  std::string tmpl = out.string() + ".tmp-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr)
    usage_error("cannot create a folder next to output '", out.string(),
                "': ", std::strerror(errno));
  const fs::path tmp = tmpl;
  ::chmod(tmp.c_str(), usual_mode(0777));
  try {
    const Tokenizer tok = make_tokenizer(opts, splits, tmp, threads);
    const std::array<uint64_t, 3> counts = write_splits(opts, tok, splits, tmp, threads, t0);
    const bool replaced = swap_into_place(tmp, out, opts.replace);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::fprintf(stderr,
                 "prepare: %s vocab %d; train %s, valid %s, test %s tokens; %.1f s -> %s%s\n",
                 tokenizer_kind_name(tok.kind()), tok.vocab(), with_commas(counts[0]).c_str(),
                 with_commas(counts[1]).c_str(), with_commas(counts[2]).c_str(), seconds,
                 out.string().c_str(), replaced ? " (replaced the data prepared there before)" : "");
  } catch (const UsageError& e) {  // e.g. a full disk: name OUT, not the folder removed here
    fs::remove_all(tmp, ec);
    std::string msg = e.what();
    for (size_t at; (at = msg.find(tmp.string())) != std::string::npos;)
      msg.replace(at, tmp.string().size(), out.string());
    throw UsageError(msg);
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
}

void sample_batch(const TokenSplit& split, int B, int T, uint64_t seed, int64_t step, int micro,
                  int32_t* tokens, int32_t* targets) {
  ALIBI_CHECK(B > 0 && T > 0, "B ", B, " T ", T);
  const uint64_t n = split.tokens.size();
  if (n < uint64_t(T) + 1)
    usage_error("split '", split.path, "' has ", n,
                " tokens; need at least T+1 = ", uint64_t(T) + 1, " for --seq-len ", T);
  const uint64_t starts = n - uint64_t(T);  // windows of T+1 tokens start in [0, n-T)
  const int32_t* src = split.tokens.data();
  for (int b = 0; b < B; ++b) {
    const uint64_t start = hash64(seed, uint64_t(step), uint64_t(micro), uint64_t(b)) % starts;
    std::memcpy(tokens + size_t(b) * T, src + start, sizeof(int32_t) * size_t(T));      // (B,T)
    std::memcpy(targets + size_t(b) * T, src + start + 1, sizeof(int32_t) * size_t(T));  // (B,T)
  }
}

}  // namespace alibi
