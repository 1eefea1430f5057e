// libFuzzer target: the Cap'n Proto batch decoder must reject anything that
// is not a valid batch without crashing, and results must encode and decode.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "engine/capnp_batch.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  ledger::ParseOptions options;
  std::vector<ledger::ParsedCommand> commands;
  if (ledger::DecodeCommandBatch(body, options, &commands)) return 0;
  std::vector<ledger::Outcome> outcomes;
  for (const auto& pc : commands) {
    outcomes.push_back(pc.error ? ledger::Outcome::Error(ledger::ErrorCode::kInvalidRequest,
                                                         pc.error->message, pc.error->field)
                                : ledger::Outcome{});
  }
  std::vector<ledger::DecodedResult> decoded;
  if (ledger::DecodeResults(ledger::EncodeResults(outcomes), &decoded) ||
      decoded.size() != outcomes.size()) {
    __builtin_trap();
  }
  return 0;
}
