// Binary ingestion (SPEC §3): a Cap'n Proto `Batch` of commands in, a
// `Results` message out, with the same validation and semantics as JSON.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/json_command.h"
#include "engine/outcome.h"

namespace ledger {

// Decodes a Batch message (unpacked, flat array). A message that is not a
// valid Batch, or holds more than kBatchCommandsMax commands, fails whole.
std::optional<ParseError> DecodeCommandBatch(std::string_view bytes, const ParseOptions& options,
                                             std::vector<ParsedCommand>* out);

// Encodes one Result per outcome.
std::string EncodeResults(const std::vector<Outcome>& outcomes);

// For clients and tests: encodes commands as a Batch message, and decodes a
// Results message into (ok, json) pairs.
std::string EncodeCommandBatch(const std::vector<Command>& commands);
struct DecodedResult {
  bool ok = false;
  std::string json;
  Seq seq = 0;
  Amount balance = 0;
  std::string error_code;
};
std::optional<std::string> DecodeResults(std::string_view bytes, std::vector<DecodedResult>* out);
// Counts a Results message's results by their ok flags, reading nothing else
// (a load generator's count: DecodeResults copies each result's JSON).
std::optional<std::string> CountResults(std::string_view bytes, size_t* ok, size_t* rejected);

}  // namespace ledger
