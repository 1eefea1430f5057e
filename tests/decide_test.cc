// decide is pure: these tests call it directly with a state and facts.
#include <gtest/gtest.h>

#include "engine/decide.h"

namespace ledger {
namespace {

DecideContext Ctx(Seq seq = 10) {
  DecideContext ctx;
  ctx.seq = seq;
  ctx.time_us = 1000;
  return ctx;
}

Command Cmd(Kind kind, Amount amount, std::string key = "k") {
  Command c;
  c.kind = kind;
  c.user_id = "u";
  c.amount = amount;
  c.has_amount = true;
  c.key = std::move(key);
  return c;
}

UserState WithBalance(Amount b) {
  UserState s;
  s.balance = b;
  return s;
}

TEST(Decide, UsageBeyondBalanceIsRejectedWithBothNumbers) {
  Decision d = Decide(WithBalance(100), Cmd(Kind::kUsage, 101), Facts{}, Ctx());
  EXPECT_FALSE(d.event.has_value());
  EXPECT_EQ(d.outcome.code, ErrorCode::kInsufficientBalance);
  EXPECT_EQ(d.outcome.balance, 100);
  EXPECT_EQ(d.outcome.amount, 101);
}

TEST(Decide, UsageMayGoNegativeWhenAllowed) {
  Command c = Cmd(Kind::kUsage, 150);
  c.allow_negative = true;
  Decision d = Decide(WithBalance(100), c, Facts{}, Ctx());
  ASSERT_TRUE(d.event.has_value());
  EXPECT_EQ(d.event->running_balance, -50);
  EXPECT_EQ(d.outcome.amount, -150);
}

TEST(Decide, SameKeySameRequestIsADuplicateOtherwiseConflict) {
  Decision first = Decide(WithBalance(0), Cmd(Kind::kTopUp, 500, "pi_1"), Facts{}, Ctx(3));
  ASSERT_TRUE(first.event);
  Facts f;
  f.same_key = StoredTx{*first.event, std::nullopt};
  Decision again = Decide(WithBalance(500), Cmd(Kind::kTopUp, 500, "pi_1"), f, Ctx(4));
  EXPECT_FALSE(again.event.has_value());
  EXPECT_TRUE(again.outcome.duplicate);
  EXPECT_EQ(again.outcome.seq, 3u);
  EXPECT_EQ(again.outcome.balance, 500);
  Decision other = Decide(WithBalance(500), Cmd(Kind::kTopUp, 501, "pi_1"), f, Ctx(4));
  EXPECT_EQ(other.outcome.code, ErrorCode::kConflict);
  Command meta = Cmd(Kind::kTopUp, 500, "pi_1");
  meta.metadata = R"({"x":1})";
  EXPECT_EQ(Decide(WithBalance(500), meta, f, Ctx(4)).outcome.code, ErrorCode::kConflict);
}

TEST(Decide, CeilingRejectsAtOrAboveAndCapsBelow) {
  Command c = Cmd(Kind::kTopUp, 500);
  c.has_ceiling = true;
  c.ceiling = 1000;
  EXPECT_EQ(Decide(WithBalance(1000), c, Facts{}, Ctx()).outcome.code, ErrorCode::kCeilingReached);
  Decision d = Decide(WithBalance(900), c, Facts{}, Ctx());
  ASSERT_TRUE(d.event);
  EXPECT_EQ(d.outcome.balance, 1000);
  EXPECT_EQ(d.outcome.applied, 100);
  EXPECT_EQ(d.outcome.amount, 500);
}

TEST(Decide, RefundsMayNotExceedTheTopUp) {
  Event topup;
  topup.seq = 1;
  topup.kind = Kind::kTopUp;
  topup.amount = 1000;
  topup.key = "pi";
  UserState s = WithBalance(1000);
  s.MutableExtras().refunded[1] = 800;
  Facts f;
  f.payment = StoredTx{topup, std::nullopt};
  Command c = Cmd(Kind::kRefund, 201, "re_1");
  c.payment_key = "pi";
  EXPECT_EQ(Decide(s, c, f, Ctx()).outcome.code, ErrorCode::kRefundExceedsTopup);
  c.amount = 200;
  Decision d = Decide(s, c, f, Ctx());
  ASSERT_TRUE(d.event);
  EXPECT_EQ(d.event->ref_seq, 1u);
  EXPECT_EQ(d.outcome.balance, 800);
}

TEST(Decide, MonthlyRefillTopsUpToTheTarget) {
  UserState s = WithBalance(400);
  s.updated_at = 1;  // 1970-01
  DecideContext ctx = Ctx();
  ctx.time_us = 1772323200000000;  // 2026-03-01
  ASSERT_TRUE(RefillDue(s, ctx.time_us));
  Event e = DecideRefill(s, "u", 1000, ctx);
  EXPECT_EQ(e.kind, Kind::kGrant);
  EXPECT_EQ(e.key, "MONTHLY-CREDIT-TOP-UP-2026-03");
  EXPECT_EQ(e.amount, 600);
  EXPECT_EQ(e.running_balance, 1000);
  s.balance = 1100;
  EXPECT_EQ(DecideRefill(s, "u", 1000, ctx).amount, 0);
  s.updated_at = ctx.time_us;
  EXPECT_FALSE(RefillDue(s, ctx.time_us + 1));
}

}  // namespace
}  // namespace ledger
