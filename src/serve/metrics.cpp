#include "serve/metrics.h"

#include <algorithm>
#include <cstdio>
#include <limits>

namespace alibi::serve {
namespace {

// Latency buckets in seconds: 1 ms to 60 s, about three per decade.
std::vector<double> latency_bounds() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}

std::string number(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", x);
  return buf;
}

void header(std::string& out, const std::string& name, const char* type, const std::string& help) {
  out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

void sample(std::string& out, const std::string& name, double value) {
  out += name + " " + number(value) + "\n";
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double x) {
  const size_t i = size_t(std::lower_bound(bounds_.begin(), bounds_.end(), x) - bounds_.begin());
  ++counts_[i];
  ++count_;
  sum_ += x;
}

void Histogram::write(std::string& out, const std::string& name, const std::string& help) const {
  header(out, name, "histogram", help);
  uint64_t cum = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cum += counts_[i];
    out += name + "_bucket{le=\"" + number(bounds_[i]) + "\"} " + std::to_string(cum) + "\n";
  }
  out += name + "_bucket{le=\"+Inf\"} " + std::to_string(count_) + "\n";
  sample(out, name + "_sum", sum_);
  out += name + "_count " + std::to_string(count_) + "\n";
}

double Histogram::quantile_bound(double q) const {
  if (count_ == 0) return 0;
  const double need = q * double(count_);
  uint64_t cum = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cum += counts_[i];
    if (double(cum) >= need) return bounds_[i];
  }
  return std::numeric_limits<double>::infinity();
}

Metrics::Metrics() : ttft_(latency_bounds()), itl_(latency_bounds()), step_(latency_bounds()) {}

void Metrics::request_done(int status) {
  std::lock_guard lock(mu_);
  ++requests_[status];
}

void Metrics::tokens(int64_t prompt, int64_t generated) {
  std::lock_guard lock(mu_);
  prompt_tokens_ += uint64_t(prompt);
  generated_tokens_ += uint64_t(generated);
}

void Metrics::sequence_done(const char* finish) {
  std::lock_guard lock(mu_);
  ++sequences_[finish];
}

void Metrics::time_to_first_token(double seconds) {
  std::lock_guard lock(mu_);
  ttft_.observe(seconds);
}

void Metrics::inter_token_latency(double seconds) {
  std::lock_guard lock(mu_);
  itl_.observe(seconds);
}

void Metrics::step(int rows, int sequences, double seconds) {
  std::lock_guard lock(mu_);
  ++steps_;
  step_rows_ += uint64_t(rows);
  step_sequences_ += uint64_t(sequences);
  step_.observe(seconds);
}

std::string Metrics::prometheus(const EngineGauges& g) const {
  std::lock_guard lock(mu_);
  std::string out;
  header(out, "alibi_requests_total", "counter", "Completion requests answered, by HTTP status.");
  for (const auto& [status, n] : requests_)
    out += "alibi_requests_total{status=\"" + std::to_string(status) + "\"} " + std::to_string(n) +
           "\n";
  header(out, "alibi_sequences_total", "counter",
         "Sequences (choices) ended, by finish reason: length, stop, cancelled, error.");
  for (const auto& [reason, n] : sequences_)
    out += "alibi_sequences_total{finish=\"" + reason + "\"} " + std::to_string(n) + "\n";
  header(out, "alibi_prompt_tokens_total", "counter", "Prompt tokens prefilled.");
  sample(out, "alibi_prompt_tokens_total", double(prompt_tokens_));
  header(out, "alibi_generation_tokens_total", "counter", "Tokens generated.");
  sample(out, "alibi_generation_tokens_total", double(generated_tokens_));
  header(out, "alibi_queue_length", "gauge", "Sequences waiting for a KV cache slot.");
  sample(out, "alibi_queue_length", g.queued);
  header(out, "alibi_batch_running", "gauge", "Sequences in the running batch.");
  sample(out, "alibi_batch_running", g.running);
  header(out, "alibi_batch_slots", "gauge", "KV cache slots (--max-batch).");
  sample(out, "alibi_batch_slots", g.slots);
  header(out, "alibi_batch_occupancy", "gauge", "Running sequences over slots, 0 to 1.");
  sample(out, "alibi_batch_occupancy", g.slots > 0 ? double(g.running) / g.slots : 0.0);
  header(out, "alibi_steps_total", "counter", "Batched model steps.");
  sample(out, "alibi_steps_total", double(steps_));
  header(out, "alibi_step_rows_total", "counter",
         "Token rows computed by the steps (prefill chunks and decodes).");
  sample(out, "alibi_step_rows_total", double(step_rows_));
  header(out, "alibi_step_sequences_total", "counter",
         "Sequences in the steps, summed over steps (over alibi_steps_total: mean batch size).");
  sample(out, "alibi_step_sequences_total", double(step_sequences_));
  step_.write(out, "alibi_step_seconds", "Time of one batched model step.");
  ttft_.write(out, "alibi_time_to_first_token_seconds",
              "From a sequence's arrival to its first token.");
  itl_.write(out, "alibi_inter_token_latency_seconds", "Between two tokens of one sequence.");
  return out;
}

}  // namespace alibi::serve
