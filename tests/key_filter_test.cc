// The in-process filter asked before a RocksDB index lookup (KeyFilter,
// engine/key_filter.h): never "no" for a key that was added, rarely "yes"
// for one that was not, "maybe" for everything until it is ready.
#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <string>
#include <thread>

#include "engine/key_filter.h"
#include "engine/log_store.h"

namespace ledger::testing {
namespace {

uint64_t H(const std::string& key) { return PendingIndex::Hash(key); }

TEST(KeyFilter, SaysMaybeForEverythingUntilReady) {
  KeyFilter filter;
  filter.Add(H("pi_1"));
  EXPECT_TRUE(filter.MayContain(H("pi_1")));
  EXPECT_TRUE(filter.MayContain(H("never added")));
  filter.SetReady();
  EXPECT_TRUE(filter.MayContain(H("pi_1")));
  EXPECT_FALSE(filter.MayContain(H("never added")));
}

// Far past the first level's capacity (65,536 keys): every added key is
// still found across the levels, and about one key in a hundred that was
// not added passes.
TEST(KeyFilter, NoAddedKeyIsMissedAcrossLevelsAndFewOthersPass) {
  KeyFilter filter;
  filter.SetReady();
  constexpr int kKeys = 300000;
  for (int i = 0; i < kKeys; ++i) {
    filter.Add(
        H("user-" + std::to_string(i % 1000) + std::string(1, '\0') + "key-" + std::to_string(i)));
  }
  EXPECT_EQ(filter.keys(), static_cast<size_t>(kKeys));
  for (int i = 0; i < kKeys; ++i) {
    ASSERT_TRUE(filter.MayContain(
        H("user-" + std::to_string(i % 1000) + std::string(1, '\0') + "key-" + std::to_string(i))))
        << i;
  }
  int passed = 0;
  constexpr int kOthers = 200000;
  for (int i = 0; i < kOthers; ++i) passed += filter.MayContain(H("other-" + std::to_string(i)));
  EXPECT_LT(passed, kOthers / 40) << passed << " false positives in " << kOthers;
  // About ten bits per key, not a table of the keys.
  EXPECT_LT(filter.bytes(), static_cast<size_t>(kKeys) * 6);
}

// Lookups beside a thread that adds (and grows levels): no added key is
// ever missed once its Add returned.
TEST(KeyFilter, LookupsBesideAddsNeverMissAnAddedKey) {
  KeyFilter filter;
  filter.SetReady();
  std::atomic<int> added{0};
  std::thread adder([&] {
    for (int i = 0; i < 200000; ++i) {
      filter.Add(H("k" + std::to_string(i)));
      added.store(i + 1, std::memory_order_release);
    }
  });
  std::mt19937 rng(7);
  int checked = 0;
  while (added.load(std::memory_order_acquire) < 200000) {
    int n = added.load(std::memory_order_acquire);
    if (n == 0) continue;
    int i = static_cast<int>(rng() % n);
    ASSERT_TRUE(filter.MayContain(H("k" + std::to_string(i)))) << i;
    ++checked;
  }
  adder.join();
  EXPECT_GT(checked, 0);
}

// Two threads adding at once (the writer and the fill after an open), across
// the growth of new levels: every key is found and counted once.
TEST(KeyFilter, AddsFromTwoThreadsAcrossLevelsAreAllFound) {
  KeyFilter filter;
  filter.SetReady();
  constexpr int kPerThread = 150000;
  auto add = [&](char side) {
    for (int i = 0; i < kPerThread; ++i) filter.Add(H(side + std::to_string(i)));
  };
  std::thread a(add, 'a');
  std::thread b(add, 'b');
  a.join();
  b.join();
  EXPECT_EQ(filter.keys(), static_cast<size_t>(2 * kPerThread));
  for (char side : {'a', 'b'}) {
    for (int i = 0; i < kPerThread; ++i) {
      ASSERT_TRUE(filter.MayContain(H(side + std::to_string(i)))) << side << i;
    }
  }
}

}  // namespace
}  // namespace ledger::testing
