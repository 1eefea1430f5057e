#include "engine/metrics.h"

#include <cstdio>

namespace ledger {

Histogram::Histogram(double first_bound, double factor) {
  double b = first_bound;
  for (size_t i = 0; i < kBuckets; ++i) {
    bounds_[i] = b;
    b *= factor;
  }
}

void Histogram::Observe(double value) {
  size_t i = 0;
  while (i < kBuckets && value > bounds_[i]) ++i;
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_micro_.fetch_add(static_cast<uint64_t>(value * 1e6), std::memory_order_relaxed);
}

void Histogram::AppendPrometheus(std::string_view name, std::string* out) const {
  char line[256];
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= kBuckets; ++i) {
    cumulative += counts_[i].load(std::memory_order_relaxed);
    if (i < kBuckets) {
      std::snprintf(line, sizeof line, "%.*s_bucket{le=\"%g\"} %llu\n", int(name.size()),
                    name.data(), bounds_[i], static_cast<unsigned long long>(cumulative));
    } else {
      std::snprintf(line, sizeof line, "%.*s_bucket{le=\"+Inf\"} %llu\n", int(name.size()),
                    name.data(), static_cast<unsigned long long>(cumulative));
    }
    out->append(line);
  }
  std::snprintf(line, sizeof line, "%.*s_sum %g\n%.*s_count %llu\n", int(name.size()), name.data(),
                static_cast<double>(sum_micro_.load(std::memory_order_relaxed)) / 1e6,
                int(name.size()), name.data(),
                static_cast<unsigned long long>(count_.load(std::memory_order_relaxed)));
  out->append(line);
}

}  // namespace ledger
