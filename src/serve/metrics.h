#pragma once
// What `alibi serve` counts, shown by GET /metrics in Prometheus's text format (version 0.0.4):
// counters, gauges and histograms with fixed buckets. Thread-safe: the engine and every
// request handler write to one Metrics; /metrics reads it.
#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace alibi::serve {

// Cumulative buckets of a Prometheus histogram: counts[i] observations <= bounds[i]; the last,
// +Inf, is `count`.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double x);
  // # HELP / # TYPE lines, NAME_bucket{le=...} per bound and +Inf, NAME_sum, NAME_count.
  void write(std::string& out, const std::string& name, const std::string& help) const;
  uint64_t count() const { return count_; }
  // The smallest bucket bound below which a fraction q of the observations lie (the bucket of
  // the q-quantile; +Inf past the last bound); 0 with no observations.
  double quantile_bound(double q) const;

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket, not cumulative
  uint64_t count_ = 0;
  double sum_ = 0;
};

// The engine's state at the moment of a scrape.
struct EngineGauges {
  int running = 0;  // sequences in the batch
  int queued = 0;   // sequences waiting for a slot
  int slots = 0;    // --max-batch
};

class Metrics {
 public:
  Metrics();
  void request_done(int status);  // every completion request's answer
  void tokens(int64_t prompt, int64_t generated);
  void sequence_done(const char* finish);  // length | stop | cancelled | error
  void time_to_first_token(double seconds);
  void inter_token_latency(double seconds);
  void step(int rows, int sequences, double seconds);
  std::string prometheus(const EngineGauges& g) const;

 private:
  mutable std::mutex mu_;
  std::map<int, uint64_t> requests_;           // by HTTP status
  std::map<std::string, uint64_t> sequences_;  // by finish reason
  uint64_t prompt_tokens_ = 0, generated_tokens_ = 0, steps_ = 0, step_rows_ = 0;
  uint64_t step_sequences_ = 0;
  Histogram ttft_, itl_, step_;
};

}  // namespace alibi::serve
