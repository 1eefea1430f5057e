#include "events/event.h"

#include <array>
#include <string>

namespace ledger {

namespace {
constexpr std::array<std::string_view, kKindCount> kKindNames = {
    "top_up", "grant", "usage", "refund", "refund_request", "dispute", "adjust", "activate"};
}  // namespace

std::string GeneratedKey(Seq seq, int n) {
  std::string key(kGeneratedKeyPrefix);
  key += std::to_string(seq);
  if (n > 0) key += "." + std::to_string(n);
  return key;
}

std::string_view KindName(Kind kind) { return kKindNames[static_cast<size_t>(kind)]; }

std::optional<Kind> KindFromName(std::string_view name) {
  for (size_t i = 0; i < kKindNames.size(); ++i) {
    if (kKindNames[i] == name) return static_cast<Kind>(i);
  }
  return std::nullopt;
}

bool IsOpenDisputeStatus(std::string_view s) {
  return s == "needs_response" || s == "warning_needs_response" || s == "under_review" ||
         s == "warning_under_review";
}

bool IsKnownDisputeStatus(std::string_view s) {
  return IsOpenDisputeStatus(s) || s == "won" || s == "lost" || s == "warning_closed";
}

}  // namespace ledger
