// The one door into the engine. Opens (or creates) a data directory, recovers
// the projection by replaying the log, and runs the group-commit writer.
//
//   LedgerOptions options;  options.data_dir = "./var/ledger";
//   std::unique_ptr<Ledger> ledger;
//   Status s = Ledger::Open(options, &ledger);
//   Outcome o = ledger->Execute(command);   // blocks until durable
//
// Thread-safe: any number of threads may submit and read at once.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/command.h"
#include "engine/log_store.h"
#include "engine/metrics.h"
#include "engine/outcome.h"
#include "engine/views.h"
#include "engine/writer.h"
#include "projections/projection.h"
#include "snapshots/snapshot_store.h"

namespace ledger {

struct LedgerOptions {
  std::string data_dir = "./var/ledger";
  bool sync = true;
  Bounds bounds;
  Amount refund_tolerance = 0;
  std::optional<Amount> monthly_refill;
  std::shared_ptr<const PriceTable> prices;
  Clock clock;                        // default: the system clock
  uint64_t snapshot_every = 1000000;  // events between snapshots
  size_t queue_commands_max = 1 << 16;
  size_t group_commands_max = 1 << 14;  // commands in one group commit
  bool caller_writes = true;            // EngineConfig::caller_writes
  uint64_t wal_bytes_max = 128 << 20;   // see StoreOptions
  uint64_t wal_file_bytes = 0;          // see StoreOptions (ledgerd: 64 MiB)
  bool flush_direct_io = false;         // see StoreOptions (ledgerd --flush-io)
};

struct BalanceInfo {
  bool exists = false;  // false: no events (balance 0, no history)
  Amount balance = 0;
  TimeUs updated_at = 0;
  Seq seq = 0;  // the user's last event
};

struct LedgerStats {
  uint64_t events = 0;
  uint64_t users = 0;
  Seq last_seq = 0;
  Seq last_snapshot_seq = 0;
  uint64_t state_hash = 0;
};

class Ledger {
 public:
  static Status Open(const LedgerOptions& options, std::unique_ptr<Ledger>* out);
  ~Ledger();
  Ledger(const Ledger&) = delete;
  Ledger& operator=(const Ledger&) = delete;

  // Asynchronous: `done` gets one outcome per command, in order, after the
  // group holding them is durable. Runs on the thread that commits the group
  // (the writer's, or the caller's own before Submit returns; Writer::Submit):
  // keep it short, and do not wait in it for another submission.
  // `caller_free` true says the caller has nothing else to do until the
  // answer (as Execute): with the writer idle and one client at a time, the
  // calling thread then writes and syncs the submission itself. Left false,
  // Submit never waits on a write or an fdatasync (a thread submitting
  // a stream of commands keeps them coming, and the writer groups them).
  void Submit(std::vector<Command> commands, Completion done, bool caller_free = false);
  // Blocking conveniences over Submit.
  Outcome Execute(Command command);
  std::vector<Outcome> ExecuteBatch(std::vector<Command> commands);

  // The user's balance; appends a due monthly refill first (SPEC §2).
  BalanceInfo Balance(std::string_view user_id);
  // The balance as it is, never writing.
  BalanceInfo PeekBalance(std::string_view user_id) const;
  // Whether touching the user now would append a monthly refill.
  bool RefillDue(std::string_view user_id) const;

  LedgerStats Stats() const;
  uint64_t StateHash() const;

  LogStore* store() { return store_.get(); }
  EngineMetrics& metrics() { return metrics_; }
  const LedgerOptions& options() const { return options_; }

  // Runs `fn` with the projection under the shared lock.
  template <typename Fn>
  auto WithProjection(Fn fn) const {
    std::shared_lock<std::shared_mutex> lock(projection_mutex_);
    return fn(*projection_);
  }

  // What recovery did at Open: the snapshot used (0: none) and notes.
  const std::vector<std::string>& recovery_notes() const { return recovery_notes_; }
  Seq recovered_from_snapshot() const { return recovered_from_snapshot_; }

  // Writes a snapshot of the current state now (waits for one in progress);
  // `written`, when given, receives what was written (seq, users, bytes).
  Status SnapshotNow(SnapshotInfo* written = nullptr);

  // Stops the writer after answering everything queued, finishes any
  // snapshot in progress and writes a final one. Idempotent.
  void Close();

 private:
  Ledger() = default;
  void FillEvidence(std::vector<Outcome>& outcomes);
  // After each durable group, on the thread that committed it: starts a
  // background snapshot when due.
  void MaybeSnapshot(Seq seq, uint64_t checksum);
  // Captures the projection (O(1) under the exclusive lock) and fills `info`;
  // false if the projection is no longer at `seq`.
  bool BeginCapture(Seq seq, uint64_t checksum, SnapshotInfo* info);
  Status WriteCaptured(SnapshotInfo* info);
  void SnapshotLoop();

  LedgerOptions options_;
  std::unique_ptr<LogStore> store_;
  mutable std::shared_mutex projection_mutex_;
  std::unique_ptr<Projection> projection_;
  EngineMetrics metrics_;
  std::unique_ptr<Writer> writer_;
  std::atomic<Seq> last_snapshot_seq_{0};
  std::vector<std::string> recovery_notes_;
  Seq recovered_from_snapshot_ = 0;

  // Background snapshots: at most one at a time.
  std::mutex snap_mu_;
  std::condition_variable snap_cv_;
  bool snap_pending_ = false;  // a capture has begun and waits to be written
  bool snap_running_ = false;
  bool snap_stop_ = false;
  std::unique_ptr<SnapshotInfo> snap_info_;
  std::thread snap_thread_;
  bool closed_ = false;
};

}  // namespace ledger
