// The answer to one command: success (with what was recorded) or a business
// rejection. Rejections are values, never exceptions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "events/event.h"

namespace ledger {

enum class ErrorCode {
  kNone,
  kInvalidRequest,       // 400
  kUnauthorized,         // 401
  kNotFound,             // 404
  kConflict,             // 409
  kPayloadTooLarge,      // 413
  kInsufficientBalance,  // 422
  kCeilingReached,       // 422
  kRefundExceedsTopup,   // 422
  kOverloaded,           // 503
  kInternal,             // 500
};

std::string_view ErrorCodeName(ErrorCode code);
int HttpStatus(ErrorCode code);

struct Outcome {
  // User-provided, so that value-initialization (a vector's emplace_back(),
  // std::optional's in-place construction) only runs the member
  // initializers: with the implicit one, GCC zero-fills the whole object
  // first, ~270 bytes per answer.
  Outcome() {}

  ErrorCode code = ErrorCode::kNone;
  std::string message;
  std::string field;  // the request field at fault, when there is one

  // Success: what the command recorded (or, for a duplicate, what the
  // original recorded). seq 0 means nothing was appended.
  Seq seq = 0;
  std::string user_id;
  std::string key;
  Kind kind = Kind::kTopUp;
  Amount amount = 0;  // signed as it moves the balance; on insufficient_balance the asked amount
  Amount applied = 0;
  Amount balance = 0;  // balance after it; on insufficient_balance the current balance
  TimeUs time_us = 0;
  bool duplicate = false;
  bool skipped = false;
  bool already_active = false;
  std::string decision;
  int32_t rule_index = -1;  // priced usage: -1 when no rule matched
  bool priced = false;
  bool needs_evidence = false;  // open dispute: evidence is filled after commit
  Seq evidence_payment_seq = 0;
  std::string evidence_json;

  bool ok() const { return code == ErrorCode::kNone; }

  static Outcome Error(ErrorCode code, std::string message, std::string field = {}) {
    Outcome o;
    o.code = code;
    o.message = std::move(message);
    o.field = std::move(field);
    return o;
  }
};

// Renders an outcome as the API's JSON result object.
void AppendOutcomeJson(const Outcome& outcome, std::string* out);

// Room for one outcome's JSON: an accepted command's answer with a key and
// a user id of a few dozen bytes each is 150-250 bytes.
inline constexpr size_t kOutcomeJsonBytes = 256;

// The answer to a batch: a JSON array of the outcomes, in order, built in
// one reservation.
std::string OutcomesJson(const std::vector<Outcome>& outcomes);

}  // namespace ledger
