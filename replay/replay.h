// Replay: reads the log in seq order, verifies every record's checksum chain
// and seq, and folds each event into a projection with the same ApplyEvent the
// live writer uses (which also checks every recorded running balance).
// Works on a raw RocksDB handle so that it depends only on events/ and
// projections/.
#pragma once

#include <rocksdb/db.h>

#include <functional>
#include <string>
#include <vector>

#include "events/event.h"
#include "events/status.h"
#include "projections/projection.h"

namespace ledger {

struct ReplayOptions {
  Seq to_seq = 0;      // stop after this seq (0: the whole log)
  TimeUs to_time = 0;  // stop before the first event later than this (0: no bound)
  // Called every `progress_every` events and at the end.
  std::function<void(Seq seq, uint64_t events)> progress;
  uint64_t progress_every = 1000000;
  // Stop at the first problem (recovery) or keep going and list them (audit).
  bool stop_on_problem = true;
  // Called with each event applied, fully decoded (rebuilds that export
  // need more than the fold reads). Null: decode only what the fold needs.
  std::function<void(const Event&)> on_event;
};

struct ReplayResult {
  Seq last_seq = 0;                   // last seq applied
  uint64_t last_checksum = 0;         // its record's checksum
  uint64_t events = 0;                // events applied by this replay
  std::vector<std::string> problems;  // each names its seq
};

// Replays the records after `after_seq` (whose record checksum is
// `after_checksum`; kGenesisChecksum when after_seq is 0) into `projection`,
// which must hold the state as of `after_seq`. Returns an error status when a
// problem stopped the replay; with stop_on_problem=false problems are listed
// in `result` and replay continues with the next record.
Status ReplayLog(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* log_cf, Seq after_seq,
                 uint64_t after_checksum, Projection* projection, const ReplayOptions& options,
                 ReplayResult* result);

}  // namespace ledger
