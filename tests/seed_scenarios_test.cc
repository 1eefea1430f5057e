// The scenarios of the PostgreSQL credit system we replace (shared/seeds/),
// with their numbers, run against the engine on a real RocksDB.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <thread>

#include "engine/price_table.h"
#include "tests/test_support.h"

namespace ledger::testing {
namespace {

constexpr Amount kIntMin = -2147483648LL;

class SeedScenarios : public ::testing::Test {
 protected:
  void Open(LedgerOptions options = {}) {
    ledger_.reset();
    options.clock = clock_.AsClock();
    ledger_ = OpenLedger(dir_.path(), options);
  }
  void SetUp() override { Open(); }
  Outcome Ok(Command c) {
    Outcome o = ledger_->Execute(std::move(c));
    EXPECT_TRUE(o.ok()) << ErrorCodeName(o.code) << ": " << o.message;
    return o;
  }
  Amount BalanceOf(const std::string& user) { return ledger_->Balance(user).balance; }
  std::vector<StoredTx> History(const std::string& user, std::optional<Kind> kind = {}) {
    HistoryQuery q;
    q.kind = kind;
    HistoryPage page;
    EXPECT_TRUE(ReadHistory(ledger_->store(), user, q, &page).ok());
    return page.items;
  }
  // The seeds set balances near INT_MIN directly; here an adjust does it,
  // after a top-up that the refunds can name.
  void SetUpNearMin(const std::string& user, Amount balance, Amount topup = 100000) {
    Ok(TopUp(user, topup, "pi_" + user));
    Ok(Adjust(user, balance));
    ASSERT_EQ(BalanceOf(user), balance);
  }

  TempDir dir_;
  ManualClock clock_;
  std::unique_ptr<Ledger> ledger_;
};

// credit_underflow_test: test_debug_underflow_step_by_step
TEST_F(SeedScenarios, UnderflowStepByStep) {
  SetUpNearMin("debug", kIntMin + 100);
  Outcome o = Ok(Refund("pi_debug", 200, "re_1"));
  EXPECT_EQ(o.balance, kIntMin);
  EXPECT_EQ(o.applied, -100);
  EXPECT_EQ(o.amount, -200);
  Ok(Adjust("debug", kIntMin));
  o = Ok(Refund("pi_debug", 1, "re_2"));
  EXPECT_EQ(o.balance, kIntMin);
  EXPECT_EQ(o.applied, 0);
}

// test_underflow_protection_large_refunds
TEST_F(SeedScenarios, LargeRefundIsClampedAndTheEventSaysSo) {
  SetUpNearMin("large", kIntMin + 1000);
  Outcome o = Ok(Refund("pi_large", 2000, "re_big"));
  EXPECT_EQ(o.balance, kIntMin);
  EXPECT_GT(o.balance, kIntMin + 1000 - 2000);
  EXPECT_EQ(BalanceOf("large"), kIntMin);
  auto refunds = History("large", Kind::kRefund);
  ASSERT_EQ(refunds.size(), 1u);
  EXPECT_EQ(refunds[0].event.running_balance, kIntMin);
  EXPECT_EQ(refunds[0].event.amount, -2000);
}

// test_multiple_large_refunds_cumulative_underflow
TEST_F(SeedScenarios, CumulativeRefundsStopAtIntMin) {
  SetUpNearMin("cumulative", kIntMin + 500);
  EXPECT_EQ(Ok(Refund("pi_cumulative", 300, "re_1")).balance, kIntMin + 200);
  EXPECT_EQ(Ok(Refund("pi_cumulative", 300, "re_2")).balance, kIntMin);
  EXPECT_EQ(Ok(Refund("pi_cumulative", 300, "re_3")).balance, kIntMin);
  EXPECT_EQ(BalanceOf("cumulative"), kIntMin);
}

// test_concurrent_large_refunds_no_underflow
TEST_F(SeedScenarios, ConcurrentLargeRefundsNeverUnderflow) {
  SetUpNearMin("concurrent", kIntMin + 1000);
  std::vector<Outcome> results(3);
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([&, i] {
      results[i] = ledger_->Execute(Refund("pi_concurrent", 500, "re_" + std::to_string(i)));
    });
  }
  for (auto& t : threads) t.join();
  std::vector<Amount> balances;
  for (const Outcome& o : results) {
    ASSERT_TRUE(o.ok()) << o.message;
    EXPECT_GE(o.balance, kIntMin);
    balances.push_back(o.balance);
  }
  std::sort(balances.begin(), balances.end());
  EXPECT_EQ(balances, (std::vector<Amount>{kIntMin, kIntMin, kIntMin + 500}));
  EXPECT_EQ(BalanceOf("concurrent"), kIntMin);
}

// credit_refund_test: test_deduct_credits_atomic
TEST_F(SeedScenarios, RefundDeductsAndApprovesTheRequest) {
  Ok(TopUp("refund-user", 1000, "pi_test_12345"));
  Outcome req = Ok(RefundRequest("pi_test_12345", "Test refund"));
  EXPECT_EQ(req.decision, "auto_refund");  // amount - balance = 0 <= tolerance 0
  Outcome o = Ok(Refund("pi_test_12345", 500, "re_test_refund_123"));
  EXPECT_EQ(BalanceOf("refund-user"), 500);
  EXPECT_EQ(o.user_id, "refund-user");
  auto refunds = History("refund-user", Kind::kRefund);
  ASSERT_EQ(refunds.size(), 1u);
  EXPECT_EQ(refunds[0].event.key, "re_test_refund_123");
  EXPECT_EQ(refunds[0].event.amount, -500);
  EXPECT_EQ(refunds[0].event.running_balance, 500);
  EXPECT_TRUE(refunds[0].event.active);
  std::string json;
  ASSERT_TRUE(RefundRequestsJson(ledger_->store(), "refund-user", &json).ok());
  EXPECT_NE(json.find("\"status\":\"approved\""), std::string::npos) << json;
  EXPECT_NE(json.find("The refund request has been approved, the amount will be credited back "
                      "to your account."),
            std::string::npos);
}

TEST_F(SeedScenarios, RefundRequestAfterSpendingGoesToManualReview) {
  Ok(TopUp("spent", 1000, "pi_spent"));
  Ok(Usage("spent", 300));
  Outcome req = Ok(RefundRequest("pi_spent", "changed my mind"));
  EXPECT_EQ(req.decision, "manual_review");  // 1000 - 700 = 300 > 0
  EXPECT_EQ(req.amount, -1000);
  EXPECT_EQ(req.applied, 0);
  Outcome second = ledger_->Execute(RefundRequest("pi_spent", "again"));
  EXPECT_EQ(second.code, ErrorCode::kConflict);
  std::string json;
  ASSERT_TRUE(RefundRequestsJson(ledger_->store(), "spent", &json).ok());
  EXPECT_NE(json.find("\"status\":\"pending\""), std::string::npos) << json;
}

// test_deduct_credits_user_not_found
TEST_F(SeedScenarios, RefundOfUnknownPaymentIsNotFound) {
  Outcome o = ledger_->Execute(Refund("pi_test_nonexistent", 500, "re_test_refund_nonexistent"));
  EXPECT_EQ(o.code, ErrorCode::kNotFound);
  EXPECT_EQ(ledger_->Stats().events, 0u);
}

// test_concurrent_refunds
TEST_F(SeedScenarios, FiveConcurrentRefundsGiveDistinctRunningBalances) {
  Ok(TopUp("five", 1000, "pi_five"));
  std::vector<Outcome> results(5);
  std::vector<std::thread> threads;
  for (int i = 0; i < 5; ++i) {
    threads.emplace_back([&, i] {
      results[i] = ledger_->Execute(Refund("pi_five", 100, "re_five_" + std::to_string(i)));
    });
  }
  for (auto& t : threads) t.join();
  std::set<Amount> running;
  for (const Outcome& o : results) {
    ASSERT_TRUE(o.ok()) << o.message;
    running.insert(o.balance);
  }
  EXPECT_EQ(BalanceOf("five"), 500);
  EXPECT_EQ(running, (std::set<Amount>{500, 600, 700, 800, 900}));
  auto refunds = History("five", Kind::kRefund);
  ASSERT_EQ(refunds.size(), 5u);
  std::set<Amount> recorded;
  for (const auto& r : refunds) recorded.insert(r.event.running_balance);
  EXPECT_EQ(recorded, running);
}

// test_handle_dispute_with_sufficient_balance
TEST_F(SeedScenarios, DisputeWithSufficientBalanceIsAccepted) {
  Ok(TopUp("disputer", 1000, "pi_d"));
  Outcome o = Ok(Dispute("pi_d", "dp_test_dispute_123", 100, "needs_response"));
  EXPECT_EQ(o.decision, "accept");
  EXPECT_EQ(o.applied, 0);
  EXPECT_EQ(BalanceOf("disputer"), 1000);
}

// test_handle_dispute_with_insufficient_balance
TEST_F(SeedScenarios, DisputeBeyondToleranceIsContestedWithEvidence) {
  LedgerOptions options;
  options.refund_tolerance = 2000;
  Open(options);
  Ok(TopUp("disputer", 1000, "pi_d"));
  Outcome o = Ok(Dispute("pi_d", "dp_test_dispute_pending", 1000, "warning_needs_response"));
  EXPECT_EQ(o.decision, "contest");
  EXPECT_NE(o.evidence_json.find("\"top_up\":{\"seq\":1"), std::string::npos) << o.evidence_json;
  EXPECT_NE(o.evidence_json.find("\"recent\":["), std::string::npos);
  EXPECT_EQ(BalanceOf("disputer"), 1000);
}

// credit_test: test_block_credit_usage
TEST_F(SeedScenarios, PricedUsageChargesPlatformCredentialsOnly) {
  std::unique_ptr<PriceTable> prices;
  ASSERT_TRUE(PriceTable::Parse(R"({"ai_text_generator": [
      {"cost": 5, "filter": {"model": "gpt-4-turbo", "credentials": {"id": "platform-openai"}}}]})",
                                &prices)
                  .ok());
  LedgerOptions options;
  options.prices = std::move(prices);
  Open(options);
  Ok(TopUp("runner", 1000, "pi_r"));
  Outcome platform =
      Ok(FromJson(R"({"type":"usage","user_id":"runner","block_id":"ai_text_generator",
      "inputs":{"model":"gpt-4-turbo","credentials":{"id":"platform-openai","provider":"openai"}},
      "metadata":{"graph_exec_id":"g1","node_id":"n1"}})"));
  EXPECT_EQ(platform.amount, -5);
  EXPECT_EQ(platform.rule_index, 0);
  Outcome own = Ok(FromJson(R"({"type":"usage","user_id":"runner","block_id":"ai_text_generator",
      "inputs":{"model":"gpt-4-turbo","credentials":{"id":"users-own-key","provider":"openai"}}})"));
  EXPECT_EQ(own.amount, 0);
  EXPECT_EQ(own.seq, 0u);  // nothing appended
  EXPECT_EQ(BalanceOf("runner"), 1000 - 5);
}

// test_block_credit_top_up
TEST_F(SeedScenarios, TopUpAddsExactly) {
  Ok(TopUp("topper", 250, "pi_a"));
  EXPECT_EQ(Ok(TopUp("topper", 100, "pi_b")).balance, 350);
}

// test_block_credit_reset
TEST_F(SeedScenarios, MonthlyRefillFollowsTheSeedsMonths) {
  LedgerOptions options;
  options.monthly_refill = 1000;
  Open(options);
  clock_.Set("2026-01-01T00:00:00Z");
  EXPECT_EQ(BalanceOf("monthly"), 1000);  // January: refilled to 1000
  Ok(TopUp("monthly", 100, "pi_jan"));
  EXPECT_EQ(BalanceOf("monthly"), 1100);
  clock_.Set("2026-02-01T00:00:00Z");
  EXPECT_EQ(BalanceOf("monthly"), 1100);  // February: above the target, nothing added
  Ok(Usage("monthly", 700, "use_feb"));
  EXPECT_EQ(BalanceOf("monthly"), 400);
  clock_.Set("2026-03-01T00:00:00Z");
  EXPECT_EQ(BalanceOf("monthly"), 1000);  // March: refilled by 600
  auto grants = History("monthly", Kind::kGrant);
  ASSERT_EQ(grants.size(), 3u);
  EXPECT_EQ(grants[0].event.key, "MONTHLY-CREDIT-TOP-UP-2026-03");
  EXPECT_EQ(grants[0].event.amount, 600);
  EXPECT_EQ(grants[1].event.key, "MONTHLY-CREDIT-TOP-UP-2026-02");
  EXPECT_EQ(grants[1].event.amount, 0);
  EXPECT_EQ(grants[2].event.amount, 1000);
  // Touching again in March adds nothing.
  EXPECT_EQ(BalanceOf("monthly"), 1000);
  EXPECT_EQ(History("monthly", Kind::kGrant).size(), 3u);
}

// credit_metadata_test: both tests
TEST_F(SeedScenarios, MetadataRoundTripsOnAddAndOnActivate) {
  const std::string complex =
      R"({"graph_exec_id":"test-12345","reason":"Testing metadata serialization","nested_data":{"key1":"value1","key2":["array","of","values"],"key3":{"deeply":{"nested":"object"}}},"special_chars":"Testing 'quotes' and \"double quotes\" and unicode: 🚀"})";
  Outcome o =
      Ok(FromJson(R"({"type":"top_up","user_id":"meta","amount":500,"metadata":)" + complex + "}"));
  EXPECT_EQ(o.balance, 500);
  auto txs = History("meta");
  ASSERT_EQ(txs.size(), 1u);
  EXPECT_EQ(txs[0].event.metadata, complex);

  Outcome pending = Ok(FromJson(
      R"({"type":"top_up","user_id":"meta","amount":300,"pending":true,"key":"tx_inactive","metadata":{"initial":"inactive_transaction"}})"));
  EXPECT_EQ(pending.balance, 500);
  const std::string enable =
      R"({"payment_method":"stripe","payment_intent":"pi_test_12345","activation_reason":"Payment confirmed","complex_data":{"array":[1,2,3],"boolean":true,"null_value":null}})";
  Outcome act = Ok(FromJson(
      R"({"type":"activate","user_id":"meta","key":"tx_inactive","metadata":)" + enable + "}"));
  EXPECT_EQ(act.balance, 800);
  txs = History("meta", Kind::kTopUp);
  ASSERT_EQ(txs.size(), 2u);
  ASSERT_TRUE(txs[0].activation.has_value());
  EXPECT_EQ(txs[0].activation->metadata, enable);
  std::string shown;
  AppendTransactionJson(txs[0], &shown);
  EXPECT_NE(shown.find("\"active\":true"), std::string::npos) << shown;
  EXPECT_NE(shown.find("\"metadata\":" + enable), std::string::npos) << shown;
  EXPECT_NE(shown.find("\"running_balance\":800"), std::string::npos) << shown;
}

// test_enable_transaction_metadata_serialization (balances)
TEST_F(SeedScenarios, PendingTopUpCountsOnlyOnceActivated) {
  Outcome p = Ok(
      FromJson(R"({"type":"top_up","user_id":"pend","amount":300,"pending":true,"key":"pi_p"})"));
  EXPECT_EQ(p.applied, 0);
  EXPECT_EQ(BalanceOf("pend"), 0);
  Outcome a = Ok(Activate("pend", "pi_p"));
  EXPECT_EQ(a.balance, 300);
  EXPECT_EQ(BalanceOf("pend"), 300);
  Outcome again = Ok(Activate("pend", "pi_p"));
  EXPECT_TRUE(again.already_active);
  EXPECT_EQ(BalanceOf("pend"), 300);
}

// credit_user_balance_migration_test: test_concurrent_operations_use_userbalance_only
TEST_F(SeedScenarios, ConcurrentUsagesAllLand) {
  Ok(TopUp("spender", 1000, "pi_s"));
  std::vector<Outcome> results(3);
  std::vector<std::thread> threads;
  Amount amounts[3] = {100, 200, 300};
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([&, i] { results[i] = ledger_->Execute(Usage("spender", amounts[i])); });
  }
  for (auto& t : threads) t.join();
  for (const Outcome& o : results) EXPECT_TRUE(o.ok()) << o.message;
  EXPECT_EQ(BalanceOf("spender"), 400);
}

// test_user_balance_migration_complete / test_detect_stale_user_balance_queries
TEST_F(SeedScenarios, MigrationAdjustThenTopUp) {
  Ok(Adjust("migrated", 5000));
  EXPECT_EQ(BalanceOf("migrated"), 5000);
  Ok(TopUp("migrated", 1000, "pi_m"));
  EXPECT_EQ(BalanceOf("migrated"), 6000);
  Ok(TopUp("fresh", 1000, "pi_f"));
  Ok(Usage("fresh", 300));
  EXPECT_EQ(BalanceOf("fresh"), 700);
}

}  // namespace
}  // namespace ledger::testing
