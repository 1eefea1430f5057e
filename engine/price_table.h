// The price table of SPEC §5: block_id -> ordered rules {cost, filter}. A
// priced usage takes the first rule whose filter is contained in its inputs.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "events/event.h"
#include "events/status.h"

namespace ledger {

class PriceTable {
 public:
  struct Match {
    Amount cost = 0;  // 0 when no rule matched
    int32_t rule_index = -1;
  };

  // Parses a price table file's JSON text.
  static Status Parse(std::string_view json, std::unique_ptr<PriceTable>* out);
  static Status Load(const std::string& path, std::unique_ptr<PriceTable>* out);

  ~PriceTable();
  // `inputs_json` is a validated JSON object. Deterministic and thread-safe.
  Match Price(std::string_view block_id, std::string_view inputs_json) const;
  size_t block_count() const;

 private:
  struct Impl;
  explicit PriceTable(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ledger
