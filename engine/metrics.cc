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

void Histogram::AppendPrometheus(std::string_view name, std::string_view labels,
                                 std::string* out) const {
  std::string prefix(labels);
  if (!prefix.empty()) prefix += ",";
  std::string braces = labels.empty() ? std::string() : "{" + std::string(labels) + "}";
  char num[64];
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= kBuckets; ++i) {
    cumulative += counts_[i].load(std::memory_order_relaxed);
    out->append(name).append("_bucket{").append(prefix).append("le=\"");
    if (i < kBuckets) {
      std::snprintf(num, sizeof num, "%g", bounds_[i]);
      out->append(num);
    } else {
      out->append("+Inf");
    }
    std::snprintf(num, sizeof num, "\"} %llu\n", static_cast<unsigned long long>(cumulative));
    out->append(num);
  }
  std::snprintf(num, sizeof num, " %g\n",
                static_cast<double>(sum_micro_.load(std::memory_order_relaxed)) / 1e6);
  out->append(name).append("_sum").append(braces).append(num);
  std::snprintf(num, sizeof num, " %llu\n",
                static_cast<unsigned long long>(count_.load(std::memory_order_relaxed)));
  out->append(name).append("_count").append(braces).append(num);
}

}  // namespace ledger
