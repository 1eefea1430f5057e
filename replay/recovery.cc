#include "replay/recovery.h"

#include "events/codec.h"
#include "snapshots/snapshot_store.h"

namespace ledger {

namespace {

// The checksum stored with the log record at `seq`, if there is one.
std::optional<uint64_t> RecordChecksum(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* log_cf,
                                       Seq seq) {
  std::string record;
  if (!db->Get(rocksdb::ReadOptions(), log_cf, SeqKey(seq), &record).ok() || record.size() < 16) {
    return std::nullopt;
  }
  return StoredChecksum(record);
}

}  // namespace

Status Recover(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* log_cf,
               rocksdb::ColumnFamilyHandle* snapshots_cf, Bounds bounds,
               const ReplayOptions& options, std::unique_ptr<Projection>* out,
               RecoveryReport* report) {
  std::vector<std::string> problems;
  std::vector<SnapshotInfo> snapshots = ListSnapshots(db, snapshots_cf, &problems);
  for (std::string& p : problems) report->notes.push_back(p + "; skipped");
  for (const SnapshotInfo& snap : snapshots) {
    auto projection = std::make_unique<Projection>(bounds);
    SnapshotInfo info;
    Status s = LoadSnapshot(db, snapshots_cf, snap.seq, projection.get(), &info);
    if (s.ok()) {
      auto sum = RecordChecksum(db, log_cf, info.seq);
      if (!sum || *sum != info.log_checksum) {
        s = Status::Error("snapshot at seq " + std::to_string(info.seq) +
                          ": does not match the log record at its seq");
      }
    }
    if (!s.ok()) {
      report->notes.push_back(s.message() + "; falling back");
      continue;
    }
    ReplayResult replayed;
    s = ReplayLog(db, log_cf, info.seq, info.log_checksum, projection.get(), options, &replayed);
    if (!s.ok()) return s;
    report->snapshot_seq = info.seq;
    report->replayed = replayed.events;
    report->last_seq = replayed.last_seq;
    report->last_checksum = replayed.last_checksum;
    *out = std::move(projection);
    return Status::Ok();
  }
  auto projection = std::make_unique<Projection>(bounds);
  ReplayResult replayed;
  Status s = ReplayLog(db, log_cf, 0, kGenesisChecksum, projection.get(), options, &replayed);
  if (!s.ok()) return s;
  report->replayed = replayed.events;
  report->last_seq = replayed.last_seq;
  report->last_checksum = replayed.last_checksum;
  *out = std::move(projection);
  return Status::Ok();
}

}  // namespace ledger
