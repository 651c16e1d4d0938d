#include "data/regex.h"

#include <oniguruma.h>

#include <cstdint>
#include <mutex>

#include "core/error.h"

namespace alibi {

namespace {

void init_onig() {
  static std::once_flag once;
  std::call_once(once, [] {
    OnigEncoding enc[] = {ONIG_ENCODING_UTF8};
    onig_initialize(enc, 1);
  });
}

struct RegionDeleter {
  void operator()(OnigRegion* r) const { onig_region_free(r, 1); }
};

}  // namespace

struct Regex::Impl {
  regex_t* re = nullptr;
  ~Impl() {
    if (re) onig_free(re);
  }
};

Regex::Regex(const std::string& pattern, const std::string& where)
    : impl_(std::make_unique<Impl>()) {
  init_onig();
  OnigErrorInfo einfo;
  const auto* p = reinterpret_cast<const OnigUChar*>(pattern.data());
  const int r = onig_new(&impl_->re, p, p + pattern.size(), ONIG_OPTION_NONE, ONIG_ENCODING_UTF8,
                         ONIG_SYNTAX_DEFAULT, &einfo);
  if (r != ONIG_NORMAL) {
    OnigUChar msg[ONIG_MAX_ERROR_MESSAGE_LEN];
    onig_error_code_to_str(msg, r, &einfo);
    impl_->re = nullptr;
    usage_error(where, ": pattern '", pattern,
                "' does not compile: ", reinterpret_cast<char*>(msg));
  }
}

Regex::~Regex() = default;
Regex::Regex(Regex&&) noexcept = default;

void Regex::find_all(std::string_view s, const std::function<void(size_t, size_t)>& f) const {
  std::unique_ptr<OnigRegion, RegionDeleter> region(onig_region_new());
  const auto* str = reinterpret_cast<const OnigUChar*>(s.data());
  const OnigUChar* end = str + s.size();
  size_t from = 0;
  bool have_last = false;
  size_t last_end = 0;
  while (from <= s.size()) {
    onig_region_clear(region.get());
    const int r = onig_search(impl_->re, str, end, str + from, end, region.get(), ONIG_OPTION_NONE);
    if (r == ONIG_MISMATCH) return;
    ALIBI_CHECK(r >= 0, "onig_search failed with code ", r);
    const size_t b = size_t(region->beg[0]), e = size_t(region->end[0]);
    if (b == e && have_last && last_end == e) {  // no empty match right after the last one
      if (from >= s.size()) return;
      const auto lead = uint8_t(s[from]);  // the subject is well-formed UTF-8
      from += lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
      continue;
    }
    f(b, e);
    from = e;
    have_last = true;
    last_end = e;
  }
}

bool Regex::search(std::string_view s) const {
  const auto* str = reinterpret_cast<const OnigUChar*>(s.data());
  return onig_search(impl_->re, str, str + s.size(), str, str + s.size(), nullptr,
                     ONIG_OPTION_NONE) >= 0;
}

std::string Regex::escape(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (std::string_view("\\.+*?()|[]{}^$#&-~").find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
  return out;
}

}  // namespace alibi
