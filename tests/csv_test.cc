// CSV as psql's \copy writes it, and PostgreSQL's timestamp text.
#include "engine/csv.h"

#include <gtest/gtest.h>

#include "engine/importer.h"
#include "engine/time_format.h"

namespace ledger {
namespace {

TEST(Csv, QuotesNullsAndLineBreaks) {
  CsvReader csv("a,b,c\r\n\"x,1\",,\"\"\n\"say \"\"hi\"\"\nthere\",2,last\nend");
  CsvRow row;
  ASSERT_TRUE(csv.Next(&row));
  EXPECT_EQ(row, (CsvRow{"a", "b", "c"}));
  ASSERT_TRUE(csv.Next(&row));
  ASSERT_EQ(row.size(), 3u);
  EXPECT_EQ(row[0], "x,1");
  EXPECT_FALSE(row[1].has_value());  // unquoted empty: NULL
  EXPECT_EQ(row[2], "");             // quoted empty: the empty string
  ASSERT_TRUE(csv.Next(&row));
  EXPECT_EQ(csv.line(), 3u);
  EXPECT_EQ(row, (CsvRow{"say \"hi\"\nthere", "2", "last"}));
  ASSERT_TRUE(csv.Next(&row));
  EXPECT_EQ(csv.line(), 5u);
  EXPECT_EQ(row, (CsvRow{"end"}));
  EXPECT_FALSE(csv.Next(&row));
  EXPECT_TRUE(csv.error().empty());
}

TEST(Csv, BrokenQuotingIsAnErrorWithItsLine) {
  CsvReader open("a\n\"never closed\n");
  CsvRow row;
  ASSERT_TRUE(open.Next(&row));
  EXPECT_FALSE(open.Next(&row));
  EXPECT_EQ(open.error(), "line 2: a quoted field is not closed");
  CsvReader trailing("\"a\"b\n");
  EXPECT_FALSE(trailing.Next(&row));
  EXPECT_EQ(trailing.error(), "line 1: text after a closing quote");
}

TEST(Csv, HeaderMatchesCamelAndSnakeCase) {
  CsvHeader h(CsvRow{"transactionKey", "user_id", "Amount"});
  EXPECT_EQ(h.Find("transaction_key"), 0u);
  EXPECT_EQ(h.Find("userId"), 1u);
  EXPECT_EQ(h.Find("amount"), 2u);
  EXPECT_FALSE(h.Find("type").has_value());
}

TEST(PgTime, TimestampTextWithAndWithoutZone) {
  TimeUs t = *ParseTime("2025-03-01T10:20:30.123Z");
  EXPECT_EQ(ParsePgTime("2025-03-01 10:20:30.123"), t);
  EXPECT_EQ(ParsePgTime("2025-03-01 10:20:30.123+00"), t);
  EXPECT_EQ(ParsePgTime("2025-03-01 12:20:30.123+02"), t);
  EXPECT_EQ(ParsePgTime("2025-03-01 15:50:30.123+0530"), t);
  EXPECT_EQ(ParsePgTime("2025-03-01T10:20:30.123Z"), t);
  EXPECT_FALSE(ParsePgTime("2025-03-01").has_value());
  EXPECT_FALSE(ParsePgTime("yesterday at noon").has_value());
}

}  // namespace
}  // namespace ledger
