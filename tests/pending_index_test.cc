// A group's pending index entries (PendingIndex, engine/log_store.h): the
// last Put of a key wins, Find sees every key put since the last Clear and
// no other, and the entries come out in key order for the write batch.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <string>
#include <vector>

#include "engine/log_store.h"

namespace ledger::testing {
namespace {

std::vector<std::pair<std::string, std::string>> Sorted(PendingIndex& index) {
  std::vector<std::pair<std::string, std::string>> out;
  index.ForEachSorted([&](std::string_view k, std::string_view v) {
    out.emplace_back(std::string(k), std::string(v));
  });
  return out;
}

std::optional<std::string_view> Find(const PendingIndex& index, std::string_view key) {
  return index.Find(key, PendingIndex::Hash(key));
}

TEST(PendingIndex, LastPutWinsAndEntriesComeOutInKeyOrder) {
  PendingIndex index;
  EXPECT_FALSE(Find(index, std::string_view("alice\0k1", 8)).has_value());
  index.Put(std::string_view("bob\0k1", 6), "seq-2");
  index.Put(std::string_view("alice\0k1", 8), "seq-1");
  index.Put(std::string_view("bob\0k1", 6), "seq-3-and-activation");
  ASSERT_EQ(index.size(), 2u);
  EXPECT_EQ(*Find(index, std::string_view("bob\0k1", 6)), "seq-3-and-activation");
  EXPECT_EQ(*Find(index, std::string_view("alice\0k1", 8)), "seq-1");
  EXPECT_FALSE(Find(index, std::string_view("bob\0k2", 6)).has_value());
  EXPECT_FALSE(Find(index, "bob").has_value());  // a prefix is another key
  auto sorted = Sorted(index);
  ASSERT_EQ(sorted.size(), 2u);
  EXPECT_EQ(sorted[0].first, std::string("alice\0k1", 8));
  EXPECT_EQ(sorted[1].second, "seq-3-and-activation");
  index.Clear();
  EXPECT_TRUE(index.empty());
  EXPECT_FALSE(Find(index, std::string_view("bob\0k1", 6)).has_value());
  EXPECT_TRUE(Sorted(index).empty());
}

// Groups of many sizes, one after another in the same index as the writer
// reuses it, against a std::map: every key found with its last value, keys
// of the groups before not found, and the sorted entries equal to the map.
TEST(PendingIndex, ManyGroupsAgreeWithAMap) {
  std::mt19937_64 rng(20261203);
  PendingIndex index;
  for (int group = 0; group < 60; ++group) {
    std::map<std::string, std::string> model;
    size_t puts = (group % 7 == 0) ? 3000 : rng() % 700;
    for (size_t i = 0; i < puts; ++i) {
      // Few distinct keys in some groups (many overwrites), and empty values.
      uint64_t space = (group % 3 == 0) ? 50 : 100000;
      std::string key = "user-" + std::to_string(rng() % space) + std::string(1, '\0') +
                        std::string(rng() % 40, 'k');
      std::string value = std::string(rng() % 24, static_cast<char>('a' + group % 26));
      index.Put(key, value);
      model[key] = value;
    }
    ASSERT_EQ(index.size(), model.size()) << "group " << group;
    for (const auto& [k, v] : model) {
      std::optional<std::string_view> found = Find(index, k);
      ASSERT_TRUE(found.has_value()) << "group " << group;
      ASSERT_EQ(*found, v);
    }
    for (int i = 0; i < 200; ++i) {
      std::string absent = "nobody-" + std::to_string(rng());
      ASSERT_FALSE(Find(index, absent).has_value());
    }
    auto sorted = Sorted(index);
    using Pairs = std::vector<std::pair<std::string, std::string>>;
    ASSERT_EQ(sorted, Pairs(model.begin(), model.end()));
    index.Clear();
    for (const auto& [k, v] : model) ASSERT_FALSE(Find(index, k).has_value()) << "after Clear";
  }
}

}  // namespace
}  // namespace ledger::testing
