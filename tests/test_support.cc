#include "tests/test_support.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>

#include "engine/json_command.h"
#include "engine/text.h"
#include "engine/time_format.h"

namespace ledger::testing {

std::string Slurp(const std::string& path) {
  std::string text;
  return ReadWholeFile(path, &text).ok() ? text : std::string();
}

std::optional<int64_t> MetricValue(const std::string& metrics, std::string_view name) {
  std::string line = "\n" + std::string(name) + " ";
  size_t at = metrics.find(line);
  if (at == std::string::npos) return std::nullopt;
  return std::stoll(metrics.substr(at + line.size()));
}

TempDir::TempDir() {
  std::string base = std::filesystem::temp_directory_path().string() + "/ledger-test-XXXXXX";
  char* made = mkdtemp(base.data());
  if (made == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = made;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

ManualClock::ManualClock() : now_(*ParseTime("2026-01-15T12:00:00Z")) {}

void ManualClock::Set(const std::string& rfc3339) { now_.store(*ParseTime(rfc3339)); }

std::vector<Seq> UserSeqs(LogStore* store, std::string_view user_id, Seq before_seq, size_t limit) {
  std::vector<Seq> seqs;
  Seq seq = 0;
  EXPECT_TRUE(store->NewestUserSeq(user_id, before_seq, &seq).ok());
  while (seq != 0 && seqs.size() < limit) {
    seqs.push_back(seq);
    Event e;
    EXPECT_TRUE(store->ReadEvent(seq, &e).ok());
    EXPECT_TRUE(LogStore::PreviousUserSeq(e, user_id, &seq).ok()) << "seq " << seqs.back();
  }
  return seqs;
}

std::unique_ptr<Ledger> OpenLedger(const std::string& dir, LedgerOptions options) {
  options.data_dir = dir;
  std::unique_ptr<Ledger> ledger;
  Status s = Ledger::Open(options, &ledger);
  EXPECT_TRUE(s.ok()) << s.message();
  return ledger;
}

namespace {
Command Make(Kind kind, std::string user, Amount amount, std::string key) {
  Command c;
  c.kind = kind;
  c.user_id = std::move(user);
  c.amount = amount;
  c.has_amount = true;
  c.key = std::move(key);
  return c;
}
}  // namespace

Command TopUp(std::string user, Amount amount, std::string key) {
  return Make(Kind::kTopUp, std::move(user), amount, std::move(key));
}
Command Grant(std::string user, Amount amount, std::string key) {
  return Make(Kind::kGrant, std::move(user), amount, std::move(key));
}
Command Usage(std::string user, Amount amount, std::string key) {
  return Make(Kind::kUsage, std::move(user), amount, std::move(key));
}
std::vector<Command> PaddedUsages(const std::string& user, int count, size_t pad_bytes) {
  const std::string metadata = R"({"note":")" + std::string(pad_bytes, 'x') + R"("})";
  std::vector<Command> batch;
  for (int i = 0; i < count; ++i) {
    Command c = Usage(user, 1);
    c.metadata = metadata;
    c.has_metadata = true;
    batch.push_back(std::move(c));
  }
  return batch;
}
Command Refund(std::string payment_key, Amount amount, std::string key) {
  Command c = Make(Kind::kRefund, "", amount, std::move(key));
  c.payment_key = std::move(payment_key);
  return c;
}
Command RefundRequest(std::string payment_key, std::string reason, std::string key) {
  Command c = Make(Kind::kRefundRequest, "", 0, std::move(key));
  c.has_amount = false;
  c.payment_key = std::move(payment_key);
  c.reason = std::move(reason);
  return c;
}
Command Dispute(std::string payment_key, std::string dispute_id, Amount amount,
                std::string status) {
  Command c = Make(Kind::kDispute, "", amount, std::move(dispute_id));
  c.payment_key = std::move(payment_key);
  c.status = std::move(status);
  c.has_status = true;
  return c;
}
Command Activate(std::string user, std::string key, std::string new_key) {
  Command c = Make(Kind::kActivate, std::move(user), 0, std::move(key));
  c.has_amount = false;
  c.new_key = std::move(new_key);
  return c;
}
Command Adjust(std::string user, Amount balance, std::string reason) {
  Command c = Make(Kind::kAdjust, std::move(user), 0, "");
  c.has_amount = false;
  c.has_balance = true;
  c.balance = balance;
  c.metadata = "{\"reason\":\"" + reason + "\"}";
  c.has_metadata = true;
  return c;
}

Command FromJson(const std::string& json, bool allow_client_time) {
  ParsedBody body;
  ParseOptions options;
  options.allow_client_time = allow_client_time;
  auto err = ParseBody(json, options, &body);
  EXPECT_FALSE(err.has_value()) << (err ? err->message : "");
  if (err || body.commands.empty()) return Command{};
  EXPECT_FALSE(body.commands[0].error.has_value())
      << (body.commands[0].error ? body.commands[0].error->message : "");
  return body.commands[0].command;
}

}  // namespace ledger::testing
