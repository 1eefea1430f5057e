// The ledger's event: what one accepted command did, as recorded in the log.
// Plain value type; encoding lives in events/codec.h.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ledger {

using Seq = uint64_t;
using Amount = int64_t;
using TimeUs = int64_t;  // microseconds since the Unix epoch, UTC

enum class Kind : uint8_t {
  kTopUp = 0,
  kGrant = 1,
  kUsage = 2,
  kRefund = 3,
  kRefundRequest = 4,
  kDispute = 5,
  kAdjust = 6,
  kActivate = 7,
};
inline constexpr int kKindCount = 8;

// Keys the writer generates for commands without one: "ledger:<seq>", with a
// ".<n>" suffix when a client already used that text.
inline constexpr std::string_view kGeneratedKeyPrefix = "ledger:";
// Room for any generated key: the prefix, a seq, '.', a suffix.
inline constexpr size_t kGeneratedKeyBytesMax = 7 + 20 + 1 + 11;
// The key generated for the event at `seq`, or its `n`-th suffixed form
// (n > 0), written in `buf` (no allocation: the HTTP threads compare a
// result's key with it for every keyless command of a compact answer).
std::string_view FormatGeneratedKey(Seq seq, int n, char (&buf)[kGeneratedKeyBytesMax]);
// The same, as a string.
std::string GeneratedKey(Seq seq, int n = 0);

// The command/event type as named in the API ("top_up", "usage", ...).
std::string_view KindName(Kind kind);
std::optional<Kind> KindFromName(std::string_view name);

// Dispute statuses (Stripe's). Open ones move nothing; `lost` deducts.
bool IsOpenDisputeStatus(std::string_view status);
bool IsKnownDisputeStatus(std::string_view status);

struct Event {
  // User-provided, so that value-initialization (a vector's emplace_back(),
  // std::optional's in-place construction) only runs the member
  // initializers: with the implicit one, GCC zero-fills the whole object
  // first, ~450 bytes per event decided.
  Event() {}

  Seq seq = 0;
  TimeUs time_us = 0;
  std::string user_id;
  Kind kind = Kind::kTopUp;
  std::string key;
  Amount amount = 0;  // signed as the command moves the balance
  Amount applied = 0;
  Amount running_balance = 0;
  bool active = true;
  std::string metadata = "{}";

  Seq ref_seq = 0;      // refund/refund_request/dispute: the top-up; activate: pending event
  std::string ref_key;  // payment key; for activate the pending event's key
  std::string status;   // dispute status
  std::string reason;   // refund_request reason
  std::string new_key;  // activate rename
  bool has_ceiling = false;
  Amount ceiling = 0;
  std::string block_id;     // priced usage
  int32_t rule_index = -1;  // priced usage: matched rule
  bool allow_negative = false;
  std::string decision;   // refund_request / open dispute decision
  Seq prev_user_seq = 0;  // the same user's previous event; 0 for the user's first

  bool operator==(const Event&) const = default;
};

}  // namespace ledger
