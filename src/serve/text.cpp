#include "serve/text.h"

#include <algorithm>
#include <cmath>

namespace alibi::serve {

StopText::StopText(std::vector<std::string> stops) : stops_(std::move(stops)) {}

std::string StopText::push(std::string_view bytes) {
  if (stopped_) return {};
  held_ += utf8_.push(bytes);
  size_t first = std::string::npos;  // where the earliest stop string starts
  for (const std::string& s : stops_) first = std::min(first, held_.find(s));
  if (first != std::string::npos) {
    std::string out = held_.substr(0, first);
    held_.clear();
    stopped_ = true;
    return out;
  }
  // Keep back the longest end of the text that is the start of a stop string.
  size_t keep = 0;
  for (const std::string& s : stops_)
    for (size_t n = std::min(s.size() - 1, held_.size()); n > keep; --n)
      if (std::string_view(held_).ends_with(std::string_view(s).substr(0, n))) {
        keep = n;
        break;
      }
  std::string out = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return out;
}

std::string StopText::flush() {
  if (stopped_) return {};
  std::string out = held_ + utf8_.flush();
  held_.clear();
  return out;
}

TokenLogprob token_logprob(const float* logits, int V, int32_t token, int top) {
  float mx = logits[0];
  for (int i = 1; i < V; ++i) mx = std::max(mx, logits[i]);
  double sum = 0;
  for (int i = 0; i < V; ++i) sum += std::exp(double(logits[i]) - double(mx));
  const double lse = double(mx) + std::log(sum);
  TokenLogprob r;
  r.token = token;
  r.logprob = float(double(logits[token]) - lse);
  // The `top` largest by insertion into a short sorted list: O(V * top).
  auto before = [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  };
  std::vector<int32_t> best;
  best.reserve(size_t(top) + 1);
  for (int32_t i = 0; i < V && top > 0; ++i) {
    if (best.size() == size_t(top) && !before(i, best.back())) continue;
    best.insert(std::upper_bound(best.begin(), best.end(), i, before), i);
    if (best.size() > size_t(top)) best.pop_back();
  }
  for (int32_t i : best) r.top.emplace_back(i, float(double(logits[i]) - lse));
  return r;
}

}  // namespace alibi::serve
