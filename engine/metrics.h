// Counters and histograms the engine and server keep for /metrics. Lock-free
// (relaxed atomics): written on hot paths, read rarely.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

namespace ledger {

// Fixed exponential buckets; `bounds` are upper bounds, the last is +Inf.
class Histogram {
 public:
  static constexpr size_t kBuckets = 20;
  explicit Histogram(double first_bound, double factor);
  void Observe(double value);
  // Appends Prometheus text lines for metric `name`; `labels` (e.g.
  // `route="events"`) go on every line, before `le`.
  void AppendPrometheus(std::string_view name, std::string_view labels, std::string* out) const;
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }

 private:
  std::array<double, kBuckets> bounds_{};
  std::array<std::atomic<uint64_t>, kBuckets + 1> counts_{};
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_micro_{0};  // sum * 1e6, to stay integral
};

struct EngineMetrics {
  std::array<std::atomic<uint64_t>, 8> events_by_kind{};
  std::array<std::atomic<uint64_t>, 11> rejections_by_code{};
  std::atomic<uint64_t> duplicates{0};
  std::atomic<uint64_t> groups{0};
  std::atomic<uint64_t> overlapped_groups{0};  // written while the next was decided
  std::atomic<uint64_t> caller_groups{0};      // written by the submitting thread
  Histogram group_events{1, 2};                // events per group commit
  Histogram sync_seconds{0.00005, 2};          // latency of the synced write
  std::atomic<uint64_t> snapshots{0};
  Histogram snapshot_pause_seconds{0.000001, 2};   // writer stalled to start a capture
  Histogram snapshot_seconds{0.01, 2};             // capture + write, in the background
  std::atomic<uint64_t> snapshot_pause_max_ns{0};  // the longest writer stall so far
};

}  // namespace ledger
