#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "projections/projection.h"

namespace ledger {
namespace {

constexpr Amount kMin = -2147483648LL;
constexpr Amount kMax = 2147483647LL;

Event Ev(Seq seq, std::string user, Kind kind, Amount amount, Amount applied, Amount running) {
  Event e;
  e.seq = seq;
  e.time_us = 1000 * static_cast<TimeUs>(seq);
  e.user_id = std::move(user);
  e.kind = kind;
  e.key = "k" + std::to_string(seq);
  e.amount = amount;
  e.applied = applied;
  e.running_balance = running;
  return e;
}

TEST(Effect, ClampsAtBothEndsOfTheIntRange) {
  Event refund = Ev(1, "u", Kind::kRefund, -200, 0, 0);
  Effect e = ComputeEffect(kMin + 100, refund, Bounds{});
  EXPECT_EQ(e.new_balance, kMin);
  EXPECT_EQ(e.applied, -100);
  Event topup = Ev(1, "u", Kind::kTopUp, 10, 0, 0);
  e = ComputeEffect(kMax - 3, topup, Bounds{});
  EXPECT_EQ(e.new_balance, kMax);
  EXPECT_EQ(e.applied, 3);
}

TEST(Effect, CeilingCapsATopUp) {
  Event topup = Ev(1, "u", Kind::kTopUp, 500, 0, 0);
  topup.has_ceiling = true;
  topup.ceiling = 1000;
  Effect e = ComputeEffect(800, topup, Bounds{});
  EXPECT_EQ(e.new_balance, 1000);
  EXPECT_EQ(e.applied, 200);
}

TEST(Effect, PendingAndOpenDisputesMoveNothing) {
  Event pending = Ev(1, "u", Kind::kTopUp, 300, 0, 0);
  pending.active = false;
  EXPECT_EQ(ComputeEffect(50, pending, Bounds{}).applied, 0);
  Event open = Ev(1, "u", Kind::kDispute, -100, 0, 0);
  open.status = "needs_response";
  EXPECT_EQ(ComputeEffect(50, open, Bounds{}).applied, 0);
  open.status = "lost";
  EXPECT_EQ(ComputeEffect(50, open, Bounds{}).applied, -100);
}

TEST(Fold, RejectsAnEventWhoseRunningBalanceDisagrees) {
  UserState s;
  s.balance = 100;
  Event bad = Ev(9, "u", Kind::kUsage, -30, -30, 71);
  Status st = ApplyEvent(s, bad, Bounds{});
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("seq 9"), std::string::npos);
  EXPECT_EQ(s.balance, 100);  // unchanged
}

TEST(Fold, RejectsAnEventNamingTheWrongPreviousEvent) {
  Projection p;
  ASSERT_TRUE(p.Apply(Ev(1, "u", Kind::kTopUp, 1000, 1000, 1000)).ok());
  ASSERT_TRUE(p.Apply(Ev(2, "v", Kind::kTopUp, 5, 5, 5)).ok());
  // u's previous event is seq 1; one naming none (or another) is refused.
  Event usage = Ev(3, "u", Kind::kUsage, -10, -10, 990);
  Status st = p.Apply(usage);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("seq 3: names seq 0 as the user's previous event, but that is seq 1"),
            std::string::npos)
      << st.message();
  usage.prev_user_seq = 2;
  EXPECT_FALSE(p.Apply(usage).ok());
  usage.prev_user_seq = 1;
  ASSERT_TRUE(p.Apply(usage).ok());
  EXPECT_EQ(p.Find("u")->balance, 990);
  EXPECT_EQ(p.Find("u")->last_seq, 3u);
}

TEST(Fold, TracksPendingRefundsRequestsAndDisputes) {
  Projection p;
  ASSERT_TRUE(p.Apply(Ev(1, "u", Kind::kTopUp, 1000, 1000, 1000)).ok());
  Event pend = Ev(2, "u", Kind::kTopUp, 300, 0, 1000);
  pend.active = false;
  pend.prev_user_seq = 1;
  ASSERT_TRUE(p.Apply(pend).ok());
  EXPECT_EQ(p.Find("u")->extras->pending.at(2), 300);
  Event req = Ev(3, "u", Kind::kRefundRequest, -1000, 0, 1000);
  req.ref_seq = 1;
  req.prev_user_seq = 2;
  ASSERT_TRUE(p.Apply(req).ok());
  EXPECT_EQ(p.Find("u")->extras->open_requests.at(1), 3u);
  Event refund = Ev(4, "u", Kind::kRefund, -400, -400, 600);
  refund.ref_seq = 1;
  refund.prev_user_seq = 3;
  ASSERT_TRUE(p.Apply(refund).ok());
  EXPECT_EQ(p.Find("u")->extras->refunded.at(1), 400);
  EXPECT_EQ(p.Find("u")->extras->open_requests.count(1), 0u);
  Event act = Ev(5, "u", Kind::kActivate, 300, 300, 900);
  act.ref_seq = 2;
  act.prev_user_seq = 4;
  ASSERT_TRUE(p.Apply(act).ok());
  EXPECT_EQ(p.Find("u")->extras->pending.count(2), 0u);
  EXPECT_EQ(p.Find("u")->balance, 900);
  EXPECT_EQ(p.Find("u")->updated_at, 5000);
}

TEST(StateHash, IndependentOfUserOrderAndEqualForEqualStates) {
  Projection a, b;
  ASSERT_TRUE(a.Apply(Ev(1, "x", Kind::kTopUp, 10, 10, 10)).ok());
  ASSERT_TRUE(a.Apply(Ev(2, "y", Kind::kTopUp, 20, 20, 20)).ok());
  // Same final states published in the other order (the live path).
  UserState y = *a.Find("y");
  UserState x = *a.Find("x");
  b.Publish("y", y);
  b.Publish("x", x);
  EXPECT_EQ(a.state_hash(), b.state_hash());
  UserState x2 = x;
  x2.balance = 11;
  b.Publish("x", x2);
  EXPECT_NE(a.state_hash(), b.state_hash());
  b.Publish("x", x);
  EXPECT_EQ(a.state_hash(), b.state_hash());
}

TEST(UserIndex, ClearLeavesNoEntryBehindAndKeepsWorking) {
  // Entries whose hashes share home slots, in runs that wrap around the end
  // of the slots, few (cleared run by run) and many (cleared whole). After
  // each Clear and a new fill, every new entry is found, and a probe for an
  // old hash (all differ from the new ones) finds nothing left of the old
  // fill anywhere along its run.
  for (size_t count : {size_t{3}, size_t{40}, size_t{400}}) {
    UserIndex index;
    std::vector<std::string> keys;
    std::vector<uint64_t> hashes;
    auto key_at = [&](uint32_t i) -> std::string_view { return keys[i]; };
    for (int fill = 0; fill < 3; ++fill) {
      std::vector<uint64_t> old_hashes = hashes;
      index.Clear([&](auto clear_run) {
        for (uint64_t h : old_hashes) clear_run(h);
      });
      EXPECT_EQ(index.size(), 0u);
      keys.clear();
      hashes.clear();
      for (size_t i = 0; i < count; ++i) {
        keys.push_back("f" + std::to_string(fill) + "-" + std::to_string(i));
        // Home slots 1020..1023 and 0..3 of the first 1,024 slots, many per
        // slot; the fill moves each entry's home, so no hash repeats.
        hashes.push_back((1020 + (i * 7 + fill) % 8) % 1024 + (uint64_t{i} << 20));
        index.Insert(hashes.back(), static_cast<uint32_t>(i));
      }
      for (size_t i = 0; i < count; ++i) {
        EXPECT_EQ(index.Find(keys[i], hashes[i], key_at), i) << count << " " << i;
      }
      for (size_t i = 0; i < old_hashes.size(); ++i) {
        EXPECT_EQ(index.FirstWithHash(old_hashes[i]), UserIndex::kEmpty)
            << count << " fill " << fill << " old " << i;
      }
    }
  }
}

}  // namespace
}  // namespace ledger
