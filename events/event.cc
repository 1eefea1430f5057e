#include "events/event.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <string>

namespace ledger {

namespace {
constexpr std::array<std::string_view, kKindCount> kKindNames = {
    "top_up", "grant", "usage", "refund", "refund_request", "dispute", "adjust", "activate"};
}  // namespace

std::string_view FormatGeneratedKey(Seq seq, int n, char (&buf)[kGeneratedKeyBytesMax]) {
  char* const limit = buf + kGeneratedKeyBytesMax;
  char* end = std::copy(kGeneratedKeyPrefix.begin(), kGeneratedKeyPrefix.end(), buf);
  end = std::to_chars(end, limit, seq).ptr;
  if (n > 0 && end < limit) {  // (always room: kGeneratedKeyBytesMax)
    *end++ = '.';
    end = std::to_chars(end, limit, n).ptr;
  }
  return std::string_view(buf, static_cast<size_t>(end - buf));
}

std::string GeneratedKey(Seq seq, int n) {
  char buf[kGeneratedKeyBytesMax];
  return std::string(FormatGeneratedKey(seq, n, buf));
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
