// RFC 3339 times: always printed in UTC with microseconds
// ("2026-01-31T12:00:00.000000Z"); parsed with or without a fraction, with
// `Z` or a numeric offset.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "events/event.h"

namespace ledger {

std::string FormatTime(TimeUs t);
void AppendTime(TimeUs t, std::string* out);
// Room FormatTimeTo needs: the widest year of a TimeUs ("-292277") and the
// 23 characters after it.
inline constexpr size_t kTimeTextBytesMax = 32;
// Writes the text of AppendTime to `buf` (kTimeTextBytesMax bytes at least)
// and returns its length.
size_t FormatTimeTo(TimeUs t, char* buf);
std::optional<TimeUs> ParseTime(std::string_view text);

// Calendar month of a time as year*12 + (month-1), for the monthly refill.
int64_t MonthIndex(TimeUs t);
// "YYYY-MM" of a time.
std::string MonthLabel(TimeUs t);

}  // namespace ledger
