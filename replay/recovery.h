// Recovery: the newest snapshot that loads and checks, then the log after it.
// A snapshot that fails any check (checksums, state hash, its tie to the log)
// is skipped with a note, falling back to an older one, then to the start of
// the log.
#pragma once

#include <rocksdb/db.h>

#include <memory>
#include <string>
#include <vector>

#include "projections/projection.h"
#include "replay/replay.h"

namespace ledger {

struct RecoveryReport {
  Seq snapshot_seq = 0;   // 0: replayed from the first event
  uint64_t replayed = 0;  // events replayed after the snapshot
  Seq last_seq = 0;
  uint64_t last_checksum = 0;
  std::vector<std::string> notes;  // snapshots skipped, and why
};

Status Recover(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* log_cf,
               rocksdb::ColumnFamilyHandle* snapshots_cf, Bounds bounds,
               const ReplayOptions& options, std::unique_ptr<Projection>* out,
               RecoveryReport* report);

}  // namespace ledger
