// Helpers shared by the engine test suites: a temporary data directory (a
// real RocksDB on disk), a settable clock, and command builders.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/ledger.h"

namespace ledger::testing {

// A fresh directory under $TMPDIR, removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A clock tests can set; starts at 2026-01-15T12:00:00Z.
class ManualClock {
 public:
  ManualClock();
  TimeUs Now() const { return now_.load(); }
  void Set(TimeUs t) { now_.store(t); }
  void Set(const std::string& rfc3339);
  void Advance(TimeUs us) { now_.fetch_add(us); }
  Clock AsClock() {
    return [this] { return now_.load(); };
  }

 private:
  std::atomic<TimeUs> now_;
};

// A file's text ("" when it cannot be read).
std::string Slurp(const std::string& path);

// The value of an unlabelled counter (`name value` on a line of its own) in
// a /metrics text; nullopt when the line is missing.
std::optional<int64_t> MetricValue(const std::string& metrics, std::string_view name);

// The user's event seqs, newest first, strictly below `before_seq` (0: no
// bound), at most `limit`: the store's history walk, as a list.
std::vector<Seq> UserSeqs(LogStore* store, std::string_view user_id, Seq before_seq, size_t limit);

std::unique_ptr<Ledger> OpenLedger(const std::string& dir, LedgerOptions options = {});

Command TopUp(std::string user, Amount amount, std::string key = {});
Command Grant(std::string user, Amount amount, std::string key = {});
Command Usage(std::string user, Amount amount, std::string key = {});
// `count` usages of 1 with `pad_bytes` of metadata each: a few MB of log fast.
std::vector<Command> PaddedUsages(const std::string& user, int count, size_t pad_bytes);
Command Refund(std::string payment_key, Amount amount, std::string key = {});
Command RefundRequest(std::string payment_key, std::string reason, std::string key = {});
Command Dispute(std::string payment_key, std::string dispute_id, Amount amount, std::string status);
Command Activate(std::string user, std::string key, std::string new_key = {});
Command Adjust(std::string user, Amount balance, std::string reason = "migration");

// Parses one JSON command (the API's own parser); fails the test on error.
Command FromJson(const std::string& json, bool allow_client_time = true);

}  // namespace ledger::testing
