#include "engine/ledger.h"

#include <pthread.h>

#include <chrono>
#include <cstdio>
#include <future>

#include "events/codec.h"
#include "replay/recovery.h"

namespace ledger {

namespace {

// 3: record payloads in Cap'n Proto's packed encoding (events/RECORD_FORMAT.md).
// 2: unpacked, each user's events linked and `by_user` sparse. This build
// reads both; a format-2 directory is marked 3 once recovered for writing,
// since the records it adds from then on are packed, which a format-2 build
// cannot read.
constexpr const char* kFormatVersion = "ledger-log-3";
constexpr const char* kUnpackedFormat = "ledger-log-2";

std::string BoundsText(Bounds b) { return std::to_string(b.min) + ".." + std::to_string(b.max); }

// Settings that must not change over a log's life: the record format and the
// balance bounds (replay recomputes every clamp with them). Sets `*unpacked`
// for a directory of format 2.
Status CheckMeta(LogStore* store, const LedgerOptions& options, bool fresh, bool* unpacked) {
  *unpacked = false;
  std::string version, bounds;
  if (fresh) {
    Status s = store->PutMeta("format", kFormatVersion);
    if (!s.ok()) return s;
    return store->PutMeta("bounds", BoundsText(options.bounds));
  }
  if (!store->GetMeta("format", &version).ok()) version = kUnpackedFormat;
  *unpacked = version == kUnpackedFormat;
  if (version != kFormatVersion && !*unpacked) {
    return Status::Error("data directory has log format '" + version + "', this build reads '" +
                         kFormatVersion + "' and '" + kUnpackedFormat + "'");
  }
  if (store->GetMeta("bounds", &bounds).ok() && bounds != BoundsText(options.bounds)) {
    return Status::Error("data directory was written with balance bounds " + bounds + ", not " +
                         BoundsText(options.bounds));
  }
  return Status::Ok();
}

}  // namespace

Status Ledger::Open(const LedgerOptions& options, std::unique_ptr<Ledger>* out) {
  std::unique_ptr<Ledger> ledger(new Ledger());
  ledger->options_ = options;
  StoreOptions so;
  so.dir = options.data_dir;
  so.sync = options.sync;
  so.wal_bytes_max = options.wal_bytes_max;
  so.wal_file_bytes = options.wal_file_bytes;
  so.flush_direct_io = options.flush_direct_io;
  Status s = LogStore::Open(so, &ledger->store_);
  if (!s.ok()) return s;
  Seq last_seq = 0;
  uint64_t last_checksum = kGenesisChecksum;
  s = ledger->store_->LastRecord(&last_seq, &last_checksum);
  if (!s.ok()) return s;
  bool unpacked = false;
  s = CheckMeta(ledger->store_.get(), options, last_seq == 0, &unpacked);
  if (!s.ok()) return s;

  RecoveryReport report;
  s = Recover(ledger->store_->db(), ledger->store_->log_cf(), ledger->store_->snapshots_cf(),
              options.bounds, ReplayOptions{}, &ledger->projection_, &report);
  if (!s.ok()) return Status::Error("recovery stopped: " + s.message());
  for (const std::string& note : report.notes) {
    std::fprintf(stderr, "ledger: recovery: %s\n", note.c_str());
  }
  if (report.last_seq != last_seq) {
    return Status::Error("recovery reached seq " + std::to_string(report.last_seq) +
                         " but the log ends at seq " + std::to_string(last_seq));
  }
  if (unpacked) {
    s = ledger->store_->PutMeta("format", kFormatVersion);
    if (!s.ok()) return s;
    report.notes.push_back(std::string("log format ") + kUnpackedFormat + " marked " +
                           kFormatVersion + ": the records after seq " + std::to_string(last_seq) +
                           " are packed");
    std::fprintf(stderr, "ledger: %s\n", report.notes.back().c_str());
  }
  ledger->recovery_notes_ = report.notes;
  ledger->recovered_from_snapshot_ = report.snapshot_seq;
  ledger->store_->StartKeyFilterFill();
  auto snapshots = ListSnapshots(ledger->store_->db(), ledger->store_->snapshots_cf());
  ledger->last_snapshot_seq_ = snapshots.empty() ? 0 : snapshots.front().seq;

  // Histories start at the user's newest published (so durable) event.
  ledger->store_->SetUserHeads(
      [raw = ledger.get(), heads = HeadsOf(*ledger->projection_)](std::string_view user_id) {
        std::shared_lock<std::shared_mutex> lock(raw->projection_mutex_);
        return heads(user_id);
      });
  EngineConfig config;
  config.bounds = options.bounds;
  config.refund_tolerance = options.refund_tolerance;
  config.monthly_refill = options.monthly_refill;
  config.prices = options.prices;
  config.queue_commands_max = options.queue_commands_max;
  config.group_commands_max = options.group_commands_max;
  config.caller_writes = options.caller_writes;
  Ledger* raw = ledger.get();
  ledger->snap_thread_ = std::thread([raw] { raw->SnapshotLoop(); });
  ledger->writer_ = std::make_unique<Writer>(
      ledger->store_.get(), ledger->projection_.get(), &ledger->projection_mutex_, config,
      options.clock, &ledger->metrics_, report.last_seq, report.last_checksum);
  ledger->writer_->after_group = [raw](Seq seq, uint64_t checksum) {
    raw->MaybeSnapshot(seq, checksum);
  };
  ledger->writer_->before_answer = [raw](std::vector<Outcome>& outcomes) {
    raw->FillEvidence(outcomes);
  };
  *out = std::move(ledger);
  return Status::Ok();
}

Ledger::~Ledger() { Close(); }

void Ledger::Close() {
  if (closed_) return;
  closed_ = true;
  if (writer_) writer_->Stop();
  {
    std::lock_guard<std::mutex> lock(snap_mu_);
    snap_stop_ = true;
  }
  snap_cv_.notify_all();
  if (snap_thread_.joinable()) snap_thread_.join();  // finishes one in progress
  if (writer_ && projection_->last_seq() > last_snapshot_seq_.load()) {
    Status s = SnapshotNow();
    if (!s.ok()) std::fprintf(stderr, "ledger: final snapshot failed: %s\n", s.message().c_str());
  }
}

bool Ledger::BeginCapture(Seq seq, uint64_t checksum, SnapshotInfo* info) {
  auto start = std::chrono::steady_clock::now();
  {
    std::unique_lock<std::shared_mutex> lock(projection_mutex_);
    // The state must be exactly the state at `seq`, which `checksum` names.
    if (projection_->last_seq() != seq) return false;
    info->seq = seq;
    info->state_hash = projection_->state_hash();
    info->log_checksum = checksum;
    info->event_count = projection_->event_count();
    info->user_count = projection_->user_count();
    info->bounds = projection_->bounds();
    info->created_us = SystemClockUs();
    projection_->BeginCapture();
  }
  auto pause = std::chrono::steady_clock::now() - start;
  metrics_.snapshot_pause_seconds.Observe(std::chrono::duration<double>(pause).count());
  uint64_t ns = static_cast<uint64_t>(std::chrono::nanoseconds(pause).count());
  uint64_t seen = metrics_.snapshot_pause_max_ns.load();
  while (ns > seen && !metrics_.snapshot_pause_max_ns.compare_exchange_weak(seen, ns)) {
  }
  return true;
}

Status Ledger::WriteCaptured(SnapshotInfo* info) {
  auto start = std::chrono::steady_clock::now();
  size_t next = 0;
  Status s =
      WriteSnapshot(store_->db(), store_->snapshots_cf(), info, [&](std::vector<UserEntry>* chunk) {
        std::shared_lock<std::shared_mutex> lock(projection_mutex_);
        size_t end = std::min(next + kSnapshotChunkUsers, projection_->capture_size());
        if (next >= end) return false;
        projection_->CopyCaptured(next, end, chunk);
        next = end;
        return true;
      });
  {
    std::unique_lock<std::shared_mutex> lock(projection_mutex_);
    projection_->EndCapture();
  }
  if (!s.ok()) return s;
  s = PruneSnapshots(store_->db(), store_->snapshots_cf(), kSnapshotsKept);
  if (!s.ok()) return s;
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  metrics_.snapshot_seconds.Observe(secs);
  metrics_.snapshots.fetch_add(1);
  last_snapshot_seq_ = info->seq;
  std::fprintf(stderr, "ledger: snapshot at seq %llu: %llu users, %llu bytes, %.0f ms\n",
               static_cast<unsigned long long>(info->seq),
               static_cast<unsigned long long>(info->user_count),
               static_cast<unsigned long long>(info->bytes), secs * 1e3);
  return Status::Ok();
}

void Ledger::MaybeSnapshot(Seq seq, uint64_t checksum) {
  if (seq - last_snapshot_seq_.load() < options_.snapshot_every) return;
  std::lock_guard<std::mutex> lock(snap_mu_);
  if (snap_running_ || snap_pending_ || snap_stop_) return;
  snap_info_ = std::make_unique<SnapshotInfo>();
  if (!BeginCapture(seq, checksum, snap_info_.get())) return;  // cannot happen here
  snap_pending_ = true;
  snap_cv_.notify_all();
}

void Ledger::SnapshotLoop() {
  pthread_setname_np(pthread_self(), "ledger-snapshot");
  std::unique_lock<std::mutex> lock(snap_mu_);
  for (;;) {
    snap_cv_.wait(lock, [&] { return snap_pending_ || snap_stop_; });
    if (!snap_pending_) return;
    snap_pending_ = false;
    snap_running_ = true;
    std::unique_ptr<SnapshotInfo> info = std::move(snap_info_);
    lock.unlock();
    Status s = WriteCaptured(info.get());
    if (!s.ok()) std::fprintf(stderr, "ledger: snapshot failed: %s\n", s.message().c_str());
    lock.lock();
    snap_running_ = false;
    snap_cv_.notify_all();
  }
}

Status Ledger::SnapshotNow(SnapshotInfo* written) {
  std::unique_lock<std::mutex> lock(snap_mu_);
  snap_cv_.wait(lock, [&] { return !snap_running_ && !snap_pending_; });
  snap_running_ = true;
  lock.unlock();
  // The writer may still run: read the last seq and its record's checksum,
  // and begin the capture only if the projection is still at that seq.
  Status s = Status::Error("the ledger is too busy to pin a snapshot; retry");
  SnapshotInfo info;
  for (int attempt = 0; attempt < 100; ++attempt) {
    Seq seq = 0;
    {
      std::shared_lock<std::shared_mutex> plock(projection_mutex_);
      seq = projection_->last_seq();
    }
    if (seq == 0) {
      s = Status::Error("nothing to snapshot: the log is empty");
      break;
    }
    std::string record;
    s = store_->ReadRecord(seq, &record);
    if (!s.ok()) break;
    if (BeginCapture(seq, StoredChecksum(record), &info)) {
      s = WriteCaptured(&info);
      if (s.ok() && written) *written = info;
      break;
    }
    s = Status::Error("the ledger is too busy to pin a snapshot; retry");
  }
  lock.lock();
  snap_running_ = false;
  snap_cv_.notify_all();
  return s;
}

void Ledger::FillEvidence(std::vector<Outcome>& outcomes) {
  for (Outcome& o : outcomes) {
    if (o.ok() && o.needs_evidence) {
      o.evidence_json = EvidenceJson(store_.get(), o.user_id, o.evidence_payment_seq);
    }
  }
}

void Ledger::Submit(std::vector<Command> commands, Completion done, bool caller_free) {
  // (Dispute evidence is filled in by the writer's before_answer hook.)
  writer_->Submit(std::move(commands), std::move(done), caller_free);
}

std::vector<Outcome> Ledger::ExecuteBatch(std::vector<Command> commands) {
  std::promise<std::vector<Outcome>> promise;
  auto future = promise.get_future();
  Submit(
      std::move(commands),
      [&promise](std::vector<Outcome> outs) { promise.set_value(std::move(outs)); },
      /*caller_free=*/true);  // it waits for the answer
  return future.get();
}

Outcome Ledger::Execute(Command command) {
  std::vector<Command> one;
  one.push_back(std::move(command));
  return std::move(ExecuteBatch(std::move(one)).front());
}

BalanceInfo Ledger::PeekBalance(std::string_view user_id) const {
  std::shared_lock<std::shared_mutex> lock(projection_mutex_);
  BalanceInfo info;
  if (const UserState* s = projection_->Find(user_id)) {
    info.exists = true;
    info.balance = s->balance;
    info.updated_at = s->updated_at;
    info.seq = s->last_seq;
  }
  return info;
}

bool Ledger::RefillDue(std::string_view user_id) const {
  if (!options_.monthly_refill) return false;
  // Only a shortcut: the writer decides again, in order.
  BalanceInfo peek = PeekBalance(user_id);
  UserState probe;
  probe.updated_at = peek.exists ? peek.updated_at : 0;
  return ledger::RefillDue(probe, options_.clock ? options_.clock() : SystemClockUs());
}

BalanceInfo Ledger::Balance(std::string_view user_id) {
  if (RefillDue(user_id)) {
    // A read is a touch: let the writer append the refill first.
    Command touch;
    touch.user_id = std::string(user_id);
    touch.touch_only = true;
    Execute(std::move(touch));
  }
  return PeekBalance(user_id);
}

LedgerStats Ledger::Stats() const {
  std::shared_lock<std::shared_mutex> lock(projection_mutex_);
  LedgerStats s;
  s.events = projection_->event_count();
  s.users = projection_->user_count();
  s.last_seq = projection_->last_seq();
  s.last_snapshot_seq = last_snapshot_seq_.load();
  s.state_hash = projection_->state_hash();
  return s;
}

uint64_t Ledger::StateHash() const {
  std::shared_lock<std::shared_mutex> lock(projection_mutex_);
  return projection_->state_hash();
}

}  // namespace ledger
