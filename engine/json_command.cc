#include "engine/json_command.h"

#include <simdjson.h>

#include <cstdint>

#include "engine/text.h"
#include "engine/time_format.h"

namespace ledger {

namespace {

using simdjson::ondemand::json_type;

// Field bits, for presence and per-kind allow lists.
enum Field : uint32_t {
  kType = 1u << 0,
  kUserId = 1u << 1,
  kKey = 1u << 2,
  kAmount = 1u << 3,
  kMetadata = 1u << 4,
  kPending = 1u << 5,
  kCeiling = 1u << 6,
  kAllowNegative = 1u << 7,
  kPaymentKey = 1u << 8,
  kStatus = 1u << 9,
  kReason = 1u << 10,
  kNewKey = 1u << 11,
  kBalance = 1u << 12,
  kBlockId = 1u << 13,
  kInputs = 1u << 14,
  kTime = 1u << 15,
};

constexpr uint32_t kCommon = kType | kUserId | kKey | kMetadata | kTime;

uint32_t AllowedFields(Kind kind) {
  switch (kind) {
    case Kind::kTopUp:
      return kCommon | kAmount | kPending | kCeiling;
    case Kind::kGrant:
      return kCommon | kAmount | kPending;
    case Kind::kActivate:
      return kCommon | kNewKey;
    case Kind::kUsage:
      return kCommon | kAmount | kAllowNegative | kBlockId | kInputs;
    case Kind::kRefund:
      return kCommon | kPaymentKey | kAmount | kStatus;
    case Kind::kRefundRequest:
      return kCommon | kPaymentKey | kAmount | kReason;
    case Kind::kDispute:
      return kCommon | kPaymentKey | kAmount | kStatus;
    case Kind::kAdjust:
      return kCommon | kBalance;
  }
  return kCommon;
}

struct FieldSpec {
  std::string_view name;
  Field bit;
};
constexpr FieldSpec kFields[] = {
    {"type", kType},
    {"user_id", kUserId},
    {"key", kKey},
    {"amount", kAmount},
    {"metadata", kMetadata},
    {"pending", kPending},
    {"ceiling", kCeiling},
    {"allow_negative", kAllowNegative},
    {"payment_key", kPaymentKey},
    {"status", kStatus},
    {"reason", kReason},
    {"new_key", kNewKey},
    {"balance", kBalance},
    {"block_id", kBlockId},
    {"inputs", kInputs},
    {"time", kTime},
};

std::string_view FieldName(uint32_t bit) {
  for (const auto& f : kFields) {
    if (f.bit == bit) return f.name;
  }
  return "?";
}

ParseError Err(std::string message, std::string_view field) {
  return ParseError{std::move(message), std::string(field)};
}

// A command as read, before kind-specific validation. The views point into
// the body and the parser's string buffer, both alive for the whole parse:
// no copy of what is only checked or minified.
struct RawCommand {
  uint32_t present = 0;
  std::string_view type;
  std::string_view time;
  std::string_view metadata_raw;
  std::string_view inputs_raw;
};

std::optional<ParseError> ReadString(simdjson::ondemand::value v, std::string_view field,
                                     std::string_view* out) {
  if (v.get_string().get(*out) != simdjson::SUCCESS) {
    return Err("field '" + std::string(field) + "' must be a string", field);
  }
  return std::nullopt;
}

std::optional<ParseError> ReadString(simdjson::ondemand::value v, std::string_view field,
                                     std::string* out) {
  std::string_view s;
  if (auto e = ReadString(v, field, &s)) return e;
  out->assign(s);
  return std::nullopt;
}

std::optional<ParseError> ReadInt(simdjson::ondemand::value v, std::string_view field,
                                  int64_t* out) {
  json_type t;
  if (v.type().get(t) != simdjson::SUCCESS || t != json_type::number) {
    return Err("field '" + std::string(field) + "' must be an integer", field);
  }
  auto err = v.get_int64().get(*out);
  if (err == simdjson::NUMBER_OUT_OF_RANGE) {
    return Err("field '" + std::string(field) + "' is out of range", field);
  }
  if (err != simdjson::SUCCESS) {
    return Err("field '" + std::string(field) + "' must be an integer", field);
  }
  return std::nullopt;
}

std::optional<ParseError> ReadBool(simdjson::ondemand::value v, std::string_view field, bool* out) {
  if (v.get_bool().get(*out) != simdjson::SUCCESS) {
    return Err("field '" + std::string(field) + "' must be true or false", field);
  }
  return std::nullopt;
}

std::optional<ParseError> ReadRawObject(simdjson::ondemand::value v, std::string_view field,
                                        std::string_view* out) {
  json_type t;
  if (v.type().get(t) != simdjson::SUCCESS || t != json_type::object) {
    return Err("field '" + std::string(field) + "' must be a JSON object", field);
  }
  simdjson::ondemand::object obj;
  if (v.get_object().get(obj) != simdjson::SUCCESS ||
      obj.raw_json().get(*out) != simdjson::SUCCESS) {
    return Err("field '" + std::string(field) + "' is not well-formed JSON", field);
  }
  return std::nullopt;
}

std::optional<ParseError> ReadField(std::string_view name, simdjson::ondemand::value v, Command& c,
                                    RawCommand& raw) {
  const FieldSpec* spec = nullptr;
  for (const auto& f : kFields) {
    if (f.name == name) spec = &f;
  }
  if (spec == nullptr) {
    std::string shown(name.substr(0, 64));
    return Err("unknown field '" + shown + "'", shown);
  }
  if (raw.present & spec->bit) {
    return Err("field '" + std::string(name) + "' is given twice", name);
  }
  // null means absent. (A broken atom such as `nul` is an error here, not an
  // exception: a body not validated whole can hold one.)
  bool is_null = false;
  if (v.is_null().get(is_null) != simdjson::SUCCESS) {
    return Err("malformed value of field '" + std::string(name) + "'", name);
  }
  if (is_null) return std::nullopt;
  raw.present |= spec->bit;
  switch (spec->bit) {
    case kType:
      return ReadString(v, name, &raw.type);
    case kUserId:
      return ReadString(v, name, &c.user_id);
    case kKey:
      return ReadString(v, name, &c.key);
    case kAmount:
      c.has_amount = true;
      return ReadInt(v, name, &c.amount);
    case kMetadata:
      c.has_metadata = true;
      return ReadRawObject(v, name, &raw.metadata_raw);
    case kPending:
      return ReadBool(v, name, &c.pending);
    case kCeiling:
      c.has_ceiling = true;
      return ReadInt(v, name, &c.ceiling);
    case kAllowNegative:
      return ReadBool(v, name, &c.allow_negative);
    case kPaymentKey:
      return ReadString(v, name, &c.payment_key);
    case kStatus:
      c.has_status = true;
      return ReadString(v, name, &c.status);
    case kReason:
      return ReadString(v, name, &c.reason);
    case kNewKey:
      return ReadString(v, name, &c.new_key);
    case kBalance:
      c.has_balance = true;
      return ReadInt(v, name, &c.balance);
    case kBlockId:
      return ReadString(v, name, &c.block_id);
    case kInputs:
      return ReadRawObject(v, name, &raw.inputs_raw);
    case kTime:
      c.has_time = true;
      return ReadString(v, name, &raw.time);
  }
  return std::nullopt;
}

std::optional<ParseError> TooLarge(std::string_view field, size_t max_bytes) {
  return Err(
      "field '" + std::string(field) + "' is over " + std::to_string(max_bytes / 1024) + " KiB",
      field);
}

// Stores the minified form of an object text already known to be
// well-formed JSON.
std::optional<ParseError> Minify(std::string_view text, std::string_view field, std::string* out) {
  out->resize(text.size());
  size_t len = 0;
  if (simdjson::minify(text.data(), text.size(), out->data(), len) != simdjson::SUCCESS) {
    return Err("field '" + std::string(field) + "' is not well-formed JSON", field);
  }
  out->resize(len);
  return std::nullopt;
}

// Stores a plain minified object text as it is (IsPlainMinifiedObject): it
// needs neither the parser nor minifying.
bool CopyIfPlain(std::string_view text, std::string* out) {
  if (!IsPlainMinifiedObject(text)) return false;
  out->assign(text);
  return true;
}

// An object text that ReadRawObject found to be an object (it skipped its
// inside by brackets alone): bounded and minified. Inside a body the DOM
// parser validated whole (`validated`) it is not parsed a second time;
// otherwise it is, unless it is plain and minified already.
std::optional<ParseError> NormalizeRawObject(std::string_view text, std::string_view field,
                                             size_t max_bytes, bool validated, std::string* out) {
  if (!validated) return NormalizeJsonObject(text, field, max_bytes, out);
  if (text.size() > max_bytes) return TooLarge(field, max_bytes);
  if (CopyIfPlain(text, out)) return std::nullopt;
  return Minify(text, field, out);
}

std::optional<ParseError> ParseCommandObject(simdjson::ondemand::value value,
                                             const ParseOptions& options, bool validated,
                                             Command* out) {
  simdjson::ondemand::object obj;
  if (value.get_object().get(obj) != simdjson::SUCCESS) {
    return Err("a command must be a JSON object", "");
  }
  Command c;
  RawCommand raw;
  for (auto field : obj) {
    std::string_view name;
    if (field.unescaped_key().get(name) != simdjson::SUCCESS) {
      return Err("malformed field name", "");
    }
    simdjson::ondemand::value v;
    if (field.value().get(v) != simdjson::SUCCESS) {
      return Err("malformed value of field '" + std::string(name) + "'", name);
    }
    if (auto e = ReadField(name, v, c, raw)) return e;
  }
  if (!(raw.present & kType)) return Err("field 'type' is required", "type");
  auto kind = KindFromName(raw.type);
  if (!kind) {
    return Err("unknown type '" + std::string(raw.type.substr(0, 64)) +
                   "' (expected top_up, grant, activate, usage, refund, refund_request, "
                   "dispute or adjust)",
               "type");
  }
  c.kind = *kind;
  uint32_t extra = raw.present & ~AllowedFields(c.kind);
  if (extra != 0) {
    uint32_t bit = extra & (~extra + 1);
    return Err("field '" + std::string(FieldName(bit)) + "' does not apply to type '" +
                   std::string(raw.type) + "'",
               FieldName(bit));
  }
  if (raw.present & kMetadata) {
    if (auto e = NormalizeRawObject(raw.metadata_raw, "metadata", kMetadataBytesMax, validated,
                                    &c.metadata)) {
      return e;
    }
  }
  if (raw.present & kInputs) {
    if (auto e =
            NormalizeRawObject(raw.inputs_raw, "inputs", kMetadataBytesMax, validated, &c.inputs)) {
      return e;
    }
  }
  if (raw.present & kTime) {
    auto t = ParseTime(raw.time);
    if (!t) return Err("field 'time' must be an RFC 3339 time, e.g. 2026-01-31T12:00:00Z", "time");
    c.time_us = *t;
  }
  if (auto e = ValidateCommand(c, options)) return e;
  *out = std::move(c);
  return std::nullopt;
}

std::optional<ParseError> CheckId(const std::string& s, std::string_view field, size_t max) {
  if (!IsValidId(s, max)) {
    return Err("field '" + std::string(field) + "' must be 1 to " + std::to_string(max) +
                   " bytes of UTF-8 without control characters",
               field);
  }
  return std::nullopt;
}

std::optional<ParseError> CheckAmount(const Command& c, Amount min) {
  if (!c.has_amount) return Err("field 'amount' is required", "amount");
  if (c.amount < min || c.amount > kAmountMax) {
    return Err("field 'amount' must be an integer from " + std::to_string(min) + " to " +
                   std::to_string(kAmountMax),
               "amount");
  }
  return std::nullopt;
}

// Whether metadata (a validated, minified object) has a non-empty string "reason".
bool HasReason(const std::string& metadata) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(metadata).get(doc) != simdjson::SUCCESS) return false;
  std::string_view reason;
  return doc["reason"].get_string().get(reason) == simdjson::SUCCESS && !reason.empty();
}

}  // namespace

bool IsValidId(std::string_view s, size_t max_bytes) {
  if (s.empty() || s.size() > max_bytes) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f) return false;
    // C1 controls U+0080..U+009F are encoded C2 80..C2 9F.
    if (c == 0xc2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) <= 0x9f) {
      return false;
    }
  }
  return true;
}

bool IsPlainMinifiedObject(std::string_view t) {
  size_t i = 0;
  const size_t n = t.size();
  // A string of printable ASCII without escapes; `i` moves past it.
  auto plain_string = [&] {
    if (i >= n || t[i] != '"') return false;
    i = FindJsonSpecial(t, i + 1, /*ascii_only=*/true);
    if (i >= n || t[i] != '"') return false;
    ++i;
    return true;
  };
  auto literal = [&](std::string_view word) {
    if (t.substr(i, word.size()) != word) return false;
    i += word.size();
    return true;
  };
  if (n < 2 || t[0] != '{') return false;
  if (t[1] == '}') return n == 2;
  i = 1;
  for (;;) {
    if (!plain_string() || i >= n || t[i++] != ':' || i >= n) return false;
    char c = t[i];
    if (c == '"') {
      if (!plain_string()) return false;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      // An integer of at most 15 digits (exact as a double, within int64);
      // fractions and exponents take the parser.
      if (c == '-') ++i;
      size_t digits = i;
      while (i < n && t[i] >= '0' && t[i] <= '9') ++i;
      size_t count = i - digits;
      if (count == 0 || count > 15 || (count > 1 && t[digits] == '0')) return false;
    } else if (!literal("true") && !literal("false") && !literal("null")) {
      return false;
    }
    if (i >= n) return false;
    if (t[i] == '}') return i + 1 == n;
    if (t[i++] != ',') return false;
  }
}

std::optional<ParseError> NormalizeJsonObject(std::string_view text, std::string_view field,
                                              size_t max_bytes, std::string* out) {
  if (text.size() > max_bytes) return TooLarge(field, max_bytes);
  if (CopyIfPlain(text, out)) return std::nullopt;
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(text.data(), text.size(), true).get(doc) != simdjson::SUCCESS) {
    return Err("field '" + std::string(field) + "' is not well-formed JSON", field);
  }
  if (!doc.is_object()) {
    return Err("field '" + std::string(field) + "' must be a JSON object", field);
  }
  return Minify(text, field, out);
}

std::optional<ParseError> ValidateCommand(Command& c, const ParseOptions& options) {
  bool user_from_payment =
      c.kind == Kind::kRefund || c.kind == Kind::kRefundRequest || c.kind == Kind::kDispute;
  if (!c.user_id.empty() || !user_from_payment) {
    if (c.user_id.empty()) return Err("field 'user_id' is required", "user_id");
    if (auto e = CheckId(c.user_id, "user_id", kUserIdBytesMax)) return e;
  }
  if (!c.key.empty() || c.kind == Kind::kActivate) {
    if (c.key.empty()) return Err("field 'key' is required", "key");
    if (auto e = CheckId(c.key, "key", kKeyBytesMax)) return e;
  }
  if (c.has_time && !options.allow_client_time) {
    return Err("field 'time' is accepted only when the server runs with --allow-client-time",
               "time");
  }
  if (c.metadata.size() > kMetadataBytesMax) {
    return Err("field 'metadata' is over 64 KiB", "metadata");
  }
  if (user_from_payment) {
    if (c.payment_key.empty()) return Err("field 'payment_key' is required", "payment_key");
    if (auto e = CheckId(c.payment_key, "payment_key", kKeyBytesMax)) return e;
  }
  switch (c.kind) {
    case Kind::kTopUp:
    case Kind::kGrant:
      if (auto e = CheckAmount(c, 1)) return e;
      if (c.has_ceiling) {
        if (c.pending) return Err("field 'ceiling' cannot be combined with pending", "ceiling");
        if (c.ceiling < 0 || c.ceiling > kAmountMax) {
          return Err("field 'ceiling' must be an integer from 0 to 2147483647", "ceiling");
        }
      }
      break;
    case Kind::kActivate:
      if (!c.new_key.empty()) {
        if (auto e = CheckId(c.new_key, "new_key", kKeyBytesMax)) return e;
      }
      break;
    case Kind::kUsage:
      if (!c.block_id.empty() || !c.inputs.empty()) {
        if (c.has_amount) {
          return Err("give either 'amount' or 'block_id' with 'inputs', not both", "amount");
        }
        if (auto e = CheckId(c.block_id, "block_id", kKeyBytesMax)) return e;
        if (c.inputs.empty()) c.inputs = "{}";
      } else if (auto e = CheckAmount(c, 0)) {
        return e;
      }
      break;
    case Kind::kRefund:
      if (auto e = CheckAmount(c, 1)) return e;
      if (c.has_status && (c.status.empty() || c.status.size() > kStatusBytesMax)) {
        return Err("field 'status' must be 1 to 64 bytes", "status");
      }
      break;
    case Kind::kRefundRequest:
      if (c.has_amount) {
        if (auto e = CheckAmount(c, 1)) return e;
      }
      if (c.reason.empty()) return Err("field 'reason' is required", "reason");
      if (c.reason.size() > kReasonBytesMax) {
        return Err("field 'reason' is over 1 KiB", "reason");
      }
      break;
    case Kind::kDispute:
      if (c.key.empty()) return Err("field 'key' (the dispute id) is required", "key");
      if (auto e = CheckAmount(c, 1)) return e;
      if (!c.has_status) return Err("field 'status' is required", "status");
      if (!IsKnownDisputeStatus(c.status)) {
        return Err(
            "field 'status' must be one of needs_response, warning_needs_response, "
            "under_review, warning_under_review, warning_closed, won, lost",
            "status");
      }
      break;
    case Kind::kAdjust:
      if (!c.has_balance) return Err("field 'balance' is required", "balance");
      if (c.balance < -2147483648LL || c.balance > kAmountMax) {
        return Err("field 'balance' must be within -2147483648 to 2147483647", "balance");
      }
      if (!HasReason(c.metadata)) {
        return Err("an adjust requires a non-empty string 'reason' in metadata", "metadata");
      }
      break;
  }
  return std::nullopt;
}

namespace {

// The On-Demand pass over a body: extracts each command's fields (keeping
// metadata's raw text). `validated`: the DOM parser accepted the body whole
// already.
std::optional<ParseError> Extract(simdjson::padded_string_view padded, const ParseOptions& options,
                                  bool validated, ParsedBody* out) {
  thread_local simdjson::ondemand::parser parser;
  simdjson::ondemand::document doc;
  if (parser.iterate(padded).get(doc) != simdjson::SUCCESS) {
    return Err("malformed JSON", "");
  }
  json_type t;
  if (doc.type().get(t) != simdjson::SUCCESS) return Err("malformed JSON", "");
  out->commands.clear();
  if (t == json_type::array) {
    out->is_batch = true;
    simdjson::ondemand::array arr;
    if (doc.get_array().get(arr) != simdjson::SUCCESS) return Err("malformed JSON", "");
    for (auto element : arr) {
      if (out->commands.size() == kBatchCommandsMax) {
        return Err("a batch holds at most 8192 commands", "");
      }
      simdjson::ondemand::value v;
      if (element.get(v) != simdjson::SUCCESS) return Err("malformed JSON", "");
      ParsedCommand& pc = out->commands.emplace_back();
      if (auto e = ParseCommandObject(v, options, validated, &pc.command)) pc.error = std::move(e);
      // A syntax error inside an element leaves the iterator unusable.
      if (pc.error && pc.error->message.rfind("malformed", 0) == 0) {
        return Err("malformed JSON: " + pc.error->message, pc.error->field);
      }
    }
  } else if (t == json_type::object) {
    out->is_batch = false;
    simdjson::ondemand::value v;
    if (doc.get_value().get(v) != simdjson::SUCCESS) return Err("malformed JSON", "");
    ParsedCommand& pc = out->commands.emplace_back();
    if (auto e = ParseCommandObject(v, options, validated, &pc.command)) pc.error = std::move(e);
  } else {
    return Err("the body must be a command object or an array of commands", "");
  }
  // Unvalidated, nothing may follow the command or the batch (OUT_OF_BOUNDS:
  // the iterator is past the last token). (Validated, the DOM parser saw to
  // that, and a command rejected halfway leaves the iterator inside it.)
  if (!validated && doc.current_location().error() != simdjson::OUT_OF_BOUNDS) {
    return Err("malformed JSON", "");
  }
  return std::nullopt;
}

}  // namespace

std::optional<ParseError> ParseBody(std::string_view body, const ParseOptions& options,
                                    ParsedBody* out) {
  simdjson::padded_string padded(body);
  if (!options.validate_whole_body_first) {
    // On-Demand alone checks what it reads: UTF-8 and unescaped characters
    // over the whole body, each value read as its field's type, every comma,
    // colon and bracket between them, and nothing after the root; metadata
    // is parsed on its own (NormalizeRawObject). So a body it reads through
    // without any error is well-formed, and is done. Anything else goes the
    // slow way below, which tells a malformed body from bad commands.
    if (!Extract(padded, options, /*validated=*/false, out)) {
      bool all_ok = true;
      for (const ParsedCommand& pc : out->commands) all_ok = all_ok && !pc.error;
      if (all_ok) return std::nullopt;
    }
  }
  // Validate the whole body first: the DOM parser checks every byte (and
  // trailing content); the On-Demand pass then extracts fields and keeps
  // metadata's raw text, trusted as well-formed. (A malformed body leaves no
  // commands behind from the pass above.)
  out->commands.clear();
  thread_local simdjson::dom::parser validator;
  simdjson::dom::element root;
  if (auto error = validator.parse(padded).get(root); error != simdjson::SUCCESS) {
    if (error == simdjson::NUMBER_ERROR || error == simdjson::NUMBER_OUT_OF_RANGE) {
      return Err("malformed JSON: a number is malformed or out of range", "");
    }
    return Err("malformed JSON", "");
  }
  return Extract(padded, options, /*validated=*/true, out);
}

}  // namespace ledger
