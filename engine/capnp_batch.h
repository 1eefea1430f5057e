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

// How much a Results message says (POST /v1/events?results=...).
enum class ResultsForm {
  kFull,     // every result with its JSON text
  kCompact,  // the JSON text only where the fields do not say all of it
};

// Whether a client rebuilds `o`'s JSON from its command (type, user_id,
// key; for a command sent without a key, "ledger:<seq>") and the Result's
// fields: an accepted top-up, grant, usage or adjustment with nothing
// else to say. Those are the results a compact form leaves without JSON.
bool FieldsSayAll(const Outcome& o);

// Encodes one Result per outcome.
std::string EncodeResults(const std::vector<Outcome>& outcomes,
                          ResultsForm form = ResultsForm::kFull);

// For clients and tests: encodes commands as a Batch message, and decodes a
// Results message into (ok, json) pairs.
std::string EncodeCommandBatch(const std::vector<Command>& commands);
struct DecodedResult {
  bool ok = false;
  std::string json;  // empty when a compact form left it out
  Seq seq = 0;
  Amount balance = 0;
  std::string error_code;
  Amount amount = 0;
  Amount applied = 0;
  TimeUs time_us = 0;
  bool duplicate = false;
};
std::optional<std::string> DecodeResults(std::string_view bytes, std::vector<DecodedResult>* out);
// Counts a Results message's results by their ok flags, reading nothing else
// (a load generator's count: DecodeResults copies each result's JSON).
std::optional<std::string> CountResults(std::string_view bytes, size_t* ok, size_t* rejected);

}  // namespace ledger
