// Parsing and validating JSON commands (SPEC §3 "Bad input"). Every error
// names the field at fault; unknown fields are errors, so a misspelt
// `ammount` never passes silently.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/command.h"

namespace ledger {

inline constexpr size_t kBatchCommandsMax = 8192;  // per request; bounds one request's work

struct ParseError {
  std::string message;
  std::string field;
  bool operator==(const ParseError&) const = default;
};

struct ParseOptions {
  bool allow_client_time = false;
  // Check the whole body with the DOM parser before reading it, as a body
  // with an error in it always is. Off, an error-free body is read in one
  // On-Demand pass; tests compare the two.
  bool validate_whole_body_first = false;
};

struct ParsedCommand {
  ParsedCommand() {}  // not zero-filled first, as Command (see there)

  Command command;
  std::optional<ParseError> error;  // set: this command is rejected (invalid_request)
  bool operator==(const ParsedCommand&) const = default;
};

struct ParsedBody {
  bool is_batch = false;
  std::vector<ParsedCommand> commands;
  bool operator==(const ParsedBody&) const = default;
};

// Parses a request body: one command object, or an array of them. A body that
// is not well-formed JSON, or a batch over the limit, fails as a whole
// (returned ParseError); a single bad command in a batch fails alone.
std::optional<ParseError> ParseBody(std::string_view body, const ParseOptions& options,
                                    ParsedBody* out);

// Validation shared with the Cap'n Proto decoder: checks a Command's fields
// against the rules of its kind. `present` names the fields given.
std::optional<ParseError> ValidateCommand(Command& command, const ParseOptions& options);

// Validates a JSON object text (metadata, inputs): well-formed, an object, at
// most `max_bytes`; on success stores its minified form in `out`.
std::optional<ParseError> NormalizeJsonObject(std::string_view text, std::string_view field,
                                              size_t max_bytes, std::string* out);

// True when `t` is a JSON object the parser need not see: no whitespace, no
// nesting, keys and string values of printable ASCII without escapes, other
// values integers of at most 15 digits, true, false or null. Such a text is
// well-formed and already minified (the usual metadata, e.g.
// {"graph_exec_id":"g-1","node_id":"n-7"}); false sends a text to the
// parser, which decides.
bool IsPlainMinifiedObject(std::string_view t);

// True when `s` is 1..max bytes with no control characters (UTF-8 validity is
// checked by the JSON parser).
bool IsValidId(std::string_view s, size_t max_bytes);

}  // namespace ledger
