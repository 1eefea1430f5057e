#include "engine/capnp_batch.h"

#include <capnp/message.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "event.capnp.h"
#include "events/codec.h"

namespace ledger {
namespace {

Command Make(Kind kind, std::string user) {
  Command c;
  c.kind = kind;
  c.user_id = std::move(user);
  return c;
}

// Commands that between them set every field a Cap'n Proto command carries,
// and leave each text unset in some.
std::vector<Command> EveryField() {
  std::vector<Command> cmds;
  Command top_up = Make(Kind::kTopUp, "u1");
  top_up.key = "pi_1";
  top_up.has_amount = true;
  top_up.amount = 1000;
  top_up.has_metadata = true;
  top_up.metadata = R"({"a":[1,2],"b":"x"})";
  top_up.has_ceiling = true;
  top_up.ceiling = 5000;
  cmds.push_back(top_up);
  Command activate = Make(Kind::kActivate, "u1");
  activate.key = "pi_2";
  activate.new_key = "pi_3";
  cmds.push_back(activate);
  Command usage = Make(Kind::kUsage, "u2");
  usage.block_id = "llm";
  usage.inputs = R"({"tokens":12})";
  usage.allow_negative = true;
  cmds.push_back(usage);
  Command request = Make(Kind::kRefundRequest, "");
  request.payment_key = "pi_1";
  request.reason = "did not run";
  cmds.push_back(request);
  Command dispute = Make(Kind::kDispute, "");
  dispute.payment_key = "pi_1";
  dispute.key = "dp_1";
  dispute.has_amount = true;
  dispute.amount = 10;
  dispute.has_status = true;
  dispute.status = "needs_response";
  cmds.push_back(dispute);
  Command adjust = Make(Kind::kAdjust, "u3");
  adjust.has_balance = true;
  adjust.balance = -7;
  adjust.has_metadata = true;
  adjust.metadata = R"({"reason":"support"})";
  cmds.push_back(adjust);
  return cmds;
}

void ExpectSame(const Command& want, const Command& got) {
  EXPECT_EQ(got.kind, want.kind);
  EXPECT_EQ(got.user_id, want.user_id);
  EXPECT_EQ(got.key, want.key);
  EXPECT_EQ(got.has_amount, want.has_amount);
  EXPECT_EQ(got.amount, want.amount);
  EXPECT_EQ(got.has_metadata, want.has_metadata);
  EXPECT_EQ(got.metadata, want.metadata);
  EXPECT_EQ(got.has_ceiling, want.has_ceiling);
  EXPECT_EQ(got.ceiling, want.ceiling);
  EXPECT_EQ(got.allow_negative, want.allow_negative);
  EXPECT_EQ(got.payment_key, want.payment_key);
  EXPECT_EQ(got.has_status, want.has_status);
  EXPECT_EQ(got.status, want.status);
  EXPECT_EQ(got.reason, want.reason);
  EXPECT_EQ(got.new_key, want.new_key);
  EXPECT_EQ(got.has_balance, want.has_balance);
  EXPECT_EQ(got.balance, want.balance);
  EXPECT_EQ(got.block_id, want.block_id);
  EXPECT_EQ(got.inputs, want.inputs);
}

TEST(CapnpBatch, EveryFieldRoundTripsFromAlignedAndUnalignedBodies) {
  std::vector<Command> cmds = EveryField();
  std::string bytes = EncodeCommandBatch(cmds);
  // The body where it lies (a heap block: aligned), and one byte further
  // into a larger buffer (unaligned: read from a copy).
  std::string shifted = "x" + bytes;
  for (std::string_view body : {std::string_view(bytes), std::string_view(shifted).substr(1)}) {
    std::vector<ParsedCommand> out;
    ASSERT_FALSE(DecodeCommandBatch(body, ParseOptions{}, &out).has_value());
    ASSERT_EQ(out.size(), cmds.size());
    for (size_t i = 0; i < cmds.size(); ++i) {
      SCOPED_TRACE(i);
      ASSERT_FALSE(out[i].error.has_value()) << out[i].error->message;
      ExpectSame(cmds[i], out[i].command);
    }
  }
}

// What Cap'n Proto's own builder writes for `outcomes` (one segment).
std::string BuilderResults(const std::vector<Outcome>& outcomes, ResultsForm form) {
  capnp::MallocMessageBuilder message(1 << 18);
  auto list = message.initRoot<::Results>().initResults(static_cast<unsigned>(outcomes.size()));
  for (size_t i = 0; i < outcomes.size(); ++i) {
    const Outcome& o = outcomes[i];
    auto r = list[static_cast<unsigned>(i)];
    std::string json;
    AppendOutcomeJson(o, &json);
    r.setOk(o.ok());
    if (form == ResultsForm::kFull || !FieldsSayAll(o)) {
      r.setJson(kj::StringPtr(json.c_str(), json.size()));
    }
    r.setSeq(o.seq);
    r.setBalance(o.balance);
    r.setAmount(o.amount);
    r.setApplied(o.applied);
    r.setTimeUs(o.time_us);
    r.setDuplicate(o.duplicate);
    if (!o.ok()) {
      std::string code(ErrorCodeName(o.code));
      r.setErrorCode(kj::StringPtr(code.c_str(), code.size()));
    }
  }
  std::string out;
  AppendMessage(message, &out);
  return out;
}

TEST(CapnpBatch, CompactResultsLeaveOutOnlyJsonTheFieldsSay) {
  Outcome usage;
  usage.seq = 41;
  usage.user_id = "u";
  usage.key = "ledger:41";
  usage.kind = Kind::kUsage;
  usage.amount = -5;
  usage.applied = -5;
  usage.balance = 95;
  EXPECT_TRUE(FieldsSayAll(usage));
  Outcome suffixed = usage;  // a generated key whose text a client had taken
  suffixed.key = "ledger:41.1";
  EXPECT_FALSE(FieldsSayAll(suffixed));
  Outcome own_key = usage;  // the client's own key, whatever it looks like
  own_key.key = "ledger-run-7";
  EXPECT_TRUE(FieldsSayAll(own_key));
  Outcome refund = usage;  // its user may come from the payment
  refund.kind = Kind::kRefund;
  EXPECT_FALSE(FieldsSayAll(refund));
  Outcome skipped = usage;
  skipped.skipped = true;
  EXPECT_FALSE(FieldsSayAll(skipped));
  EXPECT_FALSE(FieldsSayAll(Outcome::Error(ErrorCode::kInsufficientBalance, "low")));

  std::vector<Outcome> outcomes = {usage, suffixed,
                                   Outcome::Error(ErrorCode::kInsufficientBalance, "low")};
  std::vector<DecodedResult> full, compact;
  ASSERT_FALSE(DecodeResults(EncodeResults(outcomes), &full).has_value());
  ASSERT_FALSE(DecodeResults(EncodeResults(outcomes, ResultsForm::kCompact), &compact).has_value());
  ASSERT_EQ(compact.size(), 3u);
  EXPECT_EQ(compact[0].json, "");
  EXPECT_EQ(compact[0].seq, 41u);
  EXPECT_EQ(compact[0].amount, -5);
  EXPECT_EQ(compact[0].balance, 95);
  EXPECT_EQ(compact[1].json, full[1].json);
  EXPECT_EQ(compact[2].json, full[2].json);
  EXPECT_EQ(compact[2].error_code, "insufficient_balance");
  EXPECT_LT(EncodeResults(outcomes, ResultsForm::kCompact).size(), EncodeResults(outcomes).size());
}

TEST(CapnpBatch, ResultsAreByteForByteCapnProtosOwn) {
  // Answers of 0 to 300 results, accepted and rejected, with keys and
  // messages of every length, in both forms: the direct encoder writes the
  // builder's bytes, and they decode to each result.
  std::mt19937 rng(3);
  for (int round = 0; round < 600; ++round) {
    ResultsForm form = round % 2 ? ResultsForm::kCompact : ResultsForm::kFull;
    std::vector<Outcome> outcomes(round < 2 ? 0 : 1 + rng() % 300);
    for (Outcome& o : outcomes) {
      if (rng() % 4 == 0) {
        o = Outcome::Error(rng() % 2 ? ErrorCode::kInsufficientBalance : ErrorCode::kInvalidRequest,
                           std::string(rng() % 40, 'm'), rng() % 2 ? "amount" : "");
        o.balance = static_cast<Amount>(rng() % 100);
      } else {
        o.seq = rng();
        o.user_id = std::string(1 + rng() % 20, 'u');
        o.key = rng() % 3 ? std::string(rng() % 30, 'k') : "ledger:" + std::to_string(o.seq);
        o.kind = static_cast<Kind>(rng() % 8);
        o.amount = -static_cast<Amount>(rng() % 1000);
        o.applied = rng() % 5 ? o.amount : 0;
        o.balance = static_cast<Amount>(rng()) - (1LL << 31);
        o.time_us = 1767225600000000LL + rng();
        o.duplicate = rng() % 5 == 0;
        o.skipped = rng() % 9 == 0;
      }
    }
    std::string bytes = EncodeResults(outcomes, form);
    ASSERT_EQ(bytes, BuilderResults(outcomes, form)) << "round " << round;
    std::vector<DecodedResult> back;
    ASSERT_FALSE(DecodeResults(bytes, &back).has_value());
    ASSERT_EQ(back.size(), outcomes.size());
    for (size_t i = 0; i < back.size(); ++i) {
      const Outcome& o = outcomes[i];
      EXPECT_EQ(back[i].ok, o.ok());
      EXPECT_EQ(back[i].seq, o.seq);
      EXPECT_EQ(back[i].balance, o.balance);
      EXPECT_EQ(back[i].amount, o.amount);
      EXPECT_EQ(back[i].applied, o.applied);
      EXPECT_EQ(back[i].time_us, o.time_us);
      EXPECT_EQ(back[i].duplicate, o.duplicate);
      std::string json;
      if (form == ResultsForm::kFull || !FieldsSayAll(o)) AppendOutcomeJson(o, &json);
      EXPECT_EQ(back[i].json, json);
      EXPECT_EQ(back[i].error_code, o.ok() ? "" : std::string(ErrorCodeName(o.code)));
    }
    // The load generator's count reads the same flags.
    size_t ok = 0, rejected = 0;
    ASSERT_FALSE(CountResults(bytes, &ok, &rejected).has_value());
    size_t oks = static_cast<size_t>(
        std::count_if(outcomes.begin(), outcomes.end(), [](const Outcome& o) { return o.ok(); }));
    EXPECT_EQ(ok, oks);
    EXPECT_EQ(rejected, outcomes.size() - oks);
  }
  size_t ok = 0, rejected = 0;
  EXPECT_TRUE(CountResults("not capnp", &ok, &rejected).has_value());
  EXPECT_EQ(ok + rejected, 0u);
}

TEST(CapnpBatch, ACommandWithoutItsRequiredTextsIsRejectedAlone) {
  // The encoder leaves empty texts unset; the reader must still tell a
  // missing user or payment key from a present one.
  std::vector<Command> cmds = {Make(Kind::kUsage, ""), Make(Kind::kRefund, "")};
  cmds[0].has_amount = true;
  cmds[1].has_amount = true;
  cmds[1].amount = 5;
  Command ok = Make(Kind::kUsage, "u");
  ok.has_amount = true;
  ok.amount = 3;
  cmds.push_back(ok);
  std::vector<ParsedCommand> out;
  ASSERT_FALSE(DecodeCommandBatch(EncodeCommandBatch(cmds), ParseOptions{}, &out).has_value());
  ASSERT_EQ(out.size(), 3u);
  ASSERT_TRUE(out[0].error.has_value());
  EXPECT_EQ(out[0].error->field, "user_id");
  ASSERT_TRUE(out[1].error.has_value());
  EXPECT_EQ(out[1].error->field, "payment_key");
  EXPECT_FALSE(out[2].error.has_value());
  EXPECT_EQ(out[2].command.amount, 3);
}

}  // namespace
}  // namespace ledger
