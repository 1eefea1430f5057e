#include "engine/outcome.h"

#include "engine/json_writer.h"
#include "engine/time_format.h"

namespace ledger {

std::string_view ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kNone:
      return "none";
    case ErrorCode::kInvalidRequest:
      return "invalid_request";
    case ErrorCode::kUnauthorized:
      return "unauthorized";
    case ErrorCode::kNotFound:
      return "not_found";
    case ErrorCode::kConflict:
      return "conflict";
    case ErrorCode::kPayloadTooLarge:
      return "payload_too_large";
    case ErrorCode::kInsufficientBalance:
      return "insufficient_balance";
    case ErrorCode::kCeilingReached:
      return "ceiling_reached";
    case ErrorCode::kRefundExceedsTopup:
      return "refund_exceeds_topup";
    case ErrorCode::kOverloaded:
      return "overloaded";
    case ErrorCode::kInternal:
      return "internal";
  }
  return "internal";
}

int HttpStatus(ErrorCode code) {
  switch (code) {
    case ErrorCode::kNone:
      return 200;
    case ErrorCode::kInvalidRequest:
      return 400;
    case ErrorCode::kUnauthorized:
      return 401;
    case ErrorCode::kNotFound:
      return 404;
    case ErrorCode::kConflict:
      return 409;
    case ErrorCode::kPayloadTooLarge:
      return 413;
    case ErrorCode::kInsufficientBalance:
    case ErrorCode::kCeilingReached:
    case ErrorCode::kRefundExceedsTopup:
      return 422;
    case ErrorCode::kOverloaded:
      return 503;
    case ErrorCode::kInternal:
      return 500;
  }
  return 500;
}

void AppendOutcomeJson(const Outcome& o, std::string* out) {
  // Every answer passes here: written on the stack and appended once.
  StackAppender sink(out);
  BasicJsonWriter<StackAppender> w(&sink);
  w.BeginObject();
  if (!o.ok()) {
    w.Key("ok").Bool(false).Key("error").BeginObject();
    w.Key("code").PlainString(ErrorCodeName(o.code)).Key("message").String(o.message);
    if (!o.field.empty()) w.Key("field").String(o.field);
    if (o.code == ErrorCode::kInsufficientBalance) {
      w.Key("balance").Int(o.balance).Key("amount").Int(o.amount);
    }
    w.EndObject().EndObject();
    return;
  }
  w.Key("ok").Bool(true);
  w.Key("seq");
  if (o.seq == 0) {
    w.Null();
  } else {
    w.Uint(o.seq);
  }
  w.Key("user_id").String(o.user_id);
  w.Key("key");
  if (o.key.empty()) {
    w.Null();
  } else {
    w.String(o.key);
  }
  w.Key("type").PlainString(KindName(o.kind));
  w.Key("amount").Int(o.amount).Key("applied").Int(o.applied).Key("balance").Int(o.balance);
  w.Key("time").Time(o.time_us);
  if (o.duplicate) w.Key("duplicate").Bool(true);
  if (o.skipped) w.Key("skipped").Bool(true);
  if (o.already_active) w.Key("already_active").Bool(true);
  if (!o.decision.empty()) w.Key("decision").String(o.decision);
  if (o.priced) {
    w.Key("rule");
    if (o.rule_index < 0) {
      w.Null();
    } else {
      w.Int(o.rule_index);
    }
  }
  if (!o.evidence_json.empty()) w.Key("evidence").Raw(o.evidence_json);
  w.EndObject();
}

std::string OutcomesJson(const std::vector<Outcome>& outcomes) {
  std::string out;
  out.reserve(outcomes.size() * kOutcomeJsonBytes + 2);
  out.push_back('[');
  for (size_t i = 0; i < outcomes.size(); ++i) {
    if (i) out.push_back(',');
    AppendOutcomeJson(outcomes[i], &out);
  }
  out.push_back(']');
  return out;
}

}  // namespace ledger
