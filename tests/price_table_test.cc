#include <gtest/gtest.h>

#include "engine/price_table.h"

namespace ledger {
namespace {

std::unique_ptr<PriceTable> Table() {
  std::unique_ptr<PriceTable> t;
  Status s = PriceTable::Parse(R"({
    "llm": [
      {"cost": 15, "filter": {"model": "gpt-4-turbo", "credentials": {"provider": "platform"}}},
      {"cost": 2, "filter": {"model": "gpt-3.5"}},
      {"cost": 1, "filter": {"tags": ["a", "b"], "n": 3}}
    ],
    "free": []
  })",
                               &t);
  EXPECT_TRUE(s.ok()) << s.message();
  return t;
}

TEST(PriceTable, FirstContainedRuleWins) {
  auto t = Table();
  auto m = t->Price(
      "llm",
      R"({"model":"gpt-4-turbo","prompt":"hi","credentials":{"provider":"platform","id":"x"}})");
  EXPECT_EQ(m.cost, 15);
  EXPECT_EQ(m.rule_index, 0);
  m = t->Price("llm", R"({"model":"gpt-3.5","credentials":{"provider":"platform"}})");
  EXPECT_EQ(m.cost, 2);
  EXPECT_EQ(m.rule_index, 1);
}

TEST(PriceTable, OwnApiKeyMatchesNothingAndCostsZero) {
  auto t = Table();
  auto m = t->Price("llm", R"({"model":"gpt-4-turbo","credentials":{"provider":"user"}})");
  EXPECT_EQ(m.cost, 0);
  EXPECT_EQ(m.rule_index, -1);
  EXPECT_EQ(t->Price("unknown-block", "{}").cost, 0);
  EXPECT_EQ(t->Price("free", "{}").cost, 0);
}

TEST(PriceTable, ArraysAndNumbersCompareByValue) {
  auto t = Table();
  EXPECT_EQ(t->Price("llm", R"({"tags":["a","b"],"n":3.0})").cost, 1);
  EXPECT_EQ(t->Price("llm", R"({"tags":["b","a"],"n":3})").cost, 0);
  EXPECT_EQ(t->Price("llm", R"({"tags":["a","b"],"n":"3"})").cost, 0);
}

TEST(PriceTable, BadTablesAreRejectedWithAReason) {
  std::unique_ptr<PriceTable> t;
  EXPECT_FALSE(PriceTable::Parse("[]", &t).ok());
  EXPECT_FALSE(PriceTable::Parse(R"({"b":[{"cost":-1,"filter":{}}]})", &t).ok());
  Status s = PriceTable::Parse(R"({"b":[{"cost":1}]})", &t);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("'b'"), std::string::npos);
}

}  // namespace
}  // namespace ledger
