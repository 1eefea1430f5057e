#include <gtest/gtest.h>

#include <limits>

#include "engine/time_format.h"

namespace ledger {
namespace {

TEST(TimeFormat, PrintsUtcWithMicroseconds) {
  EXPECT_EQ(FormatTime(0), "1970-01-01T00:00:00.000000Z");
  EXPECT_EQ(FormatTime(1769860800000001), "2026-01-31T12:00:00.000001Z");
  EXPECT_EQ(FormatTime(-1), "1969-12-31T23:59:59.999999Z");
  EXPECT_EQ(FormatTime(253402300799999999), "9999-12-31T23:59:59.999999Z");
  EXPECT_EQ(FormatTime(-62135596800000000), "0001-01-01T00:00:00.000000Z");
  // Outside four-digit years the same fields, just wider.
  EXPECT_EQ(FormatTime(253402300800000000), "10000-01-01T00:00:00.000000Z");
  EXPECT_EQ(FormatTime(-62167219200000001), "-001-12-31T23:59:59.999999Z");
  for (TimeUs t = 1769860800000000; t < 1769860800000000 + 400LL * 86400 * 1000000;
       t += 86399999999) {
    EXPECT_EQ(*ParseTime(FormatTime(t)), t) << FormatTime(t);
  }
}

TEST(TimeFormat, TheSecondKeptForTheNextTimeIsNeverStale) {
  // Two times in one second, then another second and back: the kept text of
  // the second must follow each time, not the one before.
  EXPECT_EQ(FormatTime(1769860800000001), "2026-01-31T12:00:00.000001Z");
  EXPECT_EQ(FormatTime(1769860800999999), "2026-01-31T12:00:00.999999Z");
  EXPECT_EQ(FormatTime(1769860801000000), "2026-01-31T12:00:01.000000Z");
  EXPECT_EQ(FormatTime(1769860800000002), "2026-01-31T12:00:00.000002Z");
  // The widest years a TimeUs holds fit FormatTimeTo's buffer.
  EXPECT_EQ(FormatTime(std::numeric_limits<TimeUs>::max()), "294247-01-10T04:00:54.775807Z");
  EXPECT_EQ(FormatTime(std::numeric_limits<TimeUs>::min()), "-290308-12-21T19:59:05.224192Z");
}

TEST(TimeFormat, ParsesWithOrWithoutFractionAndOffsets) {
  EXPECT_EQ(*ParseTime("2026-01-31T12:00:00Z"), 1769860800000000);
  EXPECT_EQ(*ParseTime("2026-01-31T12:00:00.5Z"), 1769860800500000);
  EXPECT_EQ(*ParseTime("2026-01-31T13:30:00+01:30"), 1769860800000000);
  EXPECT_EQ(*ParseTime(FormatTime(1769860800123456)), 1769860800123456);
}

TEST(TimeFormat, RejectsMalformedTimes) {
  for (const char* bad :
       {"", "2026-01-31", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z", "2025-02-29T00:00:00Z",
        "2026-01-31T12:00:00", "2026-01-31T12:00:00.Z", "2026-01-31T12:00:00Zjunk", "yesterday"}) {
    EXPECT_FALSE(ParseTime(bad).has_value()) << bad;
  }
}

TEST(TimeFormat, MonthsForTheRefill) {
  EXPECT_EQ(MonthLabel(*ParseTime("2026-03-01T00:00:00Z")), "2026-03");
  EXPECT_EQ(MonthIndex(*ParseTime("2026-01-31T23:59:59Z")) + 1,
            MonthIndex(*ParseTime("2026-02-01T00:00:00Z")));
  EXPECT_EQ(MonthIndex(*ParseTime("2025-12-15T00:00:00Z")) + 1,
            MonthIndex(*ParseTime("2026-01-01T00:00:00Z")));
}

}  // namespace
}  // namespace ledger
