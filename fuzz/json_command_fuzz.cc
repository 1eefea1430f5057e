// libFuzzer target: the JSON command parser must never crash, hang or leak,
// and whatever it accepts must render as a result without trouble; an
// object the metadata fast path vouches for must be one the full parser
// accepts, already minified; and reading a body in one On-Demand pass must
// answer exactly as validating it whole with the DOM parser first.
#include <simdjson.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "engine/json_command.h"
#include "engine/outcome.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  if (ledger::IsPlainMinifiedObject(body)) {
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    std::string minified(size, '\0');
    size_t len = 0;
    if (parser.parse(body.data(), body.size(), true).get(doc) != simdjson::SUCCESS ||
        !doc.is_object() ||
        simdjson::minify(body.data(), body.size(), minified.data(), len) != simdjson::SUCCESS ||
        std::string_view(minified.data(), len) != body) {
      std::abort();
    }
  }
  for (bool allow_time : {false, true}) {
    ledger::ParseOptions options;
    options.allow_client_time = allow_time;
    ledger::ParsedBody parsed;
    auto error = ledger::ParseBody(body, options, &parsed);
    // One On-Demand pass must answer as validating the whole body first.
    ledger::ParseOptions validating = options;
    validating.validate_whole_body_first = true;
    ledger::ParsedBody checked;
    auto checked_error = ledger::ParseBody(body, validating, &checked);
    if (error != checked_error || (!error && parsed != checked)) std::abort();
    if (error) continue;
    for (const auto& pc : parsed.commands) {
      ledger::Outcome o;
      if (pc.error) {
        o = ledger::Outcome::Error(ledger::ErrorCode::kInvalidRequest, pc.error->message,
                                   pc.error->field);
      } else {
        o.user_id = pc.command.user_id;
        o.key = pc.command.key;
        o.kind = pc.command.kind;
        o.amount = pc.command.amount;
        o.time_us = pc.command.time_us;
      }
      std::string out;
      ledger::AppendOutcomeJson(o, &out);
    }
  }
  return 0;
}
