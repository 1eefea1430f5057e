// Writing, listing, loading and pruning projection snapshots in the
// `snapshots` column family (format: snapshots/snapshot.capnp). Works on raw
// RocksDB handles so it depends only on events/ and projections/.
#pragma once

#include <rocksdb/db.h>

#include <functional>
#include <string>
#include <vector>

#include "events/status.h"
#include "projections/projection.h"

namespace ledger {

struct SnapshotInfo {
  Seq seq = 0;
  uint64_t state_hash = 0;
  uint64_t log_checksum = 0;
  uint64_t event_count = 0;
  uint64_t user_count = 0;
  TimeUs created_us = 0;
  uint64_t bytes = 0;  // stored size, all parts
  Bounds bounds;
};

// Users per chunk: bounds the memory one chunk needs while it is encoded or
// decoded, and how long the projection's shared lock is held per copy.
inline constexpr size_t kSnapshotChunkUsers = 16384;
// Snapshots kept; older ones are deleted after a new one is written.
inline constexpr size_t kSnapshotsKept = 3;

// Fills `chunk` with the next users; returns false when there are no more.
using ChunkSource = std::function<bool(std::vector<UserEntry>* chunk)>;

// Writes a snapshot: the chunks first, the header last, each unlogged and
// then flushed to a table file, so a snapshot cut short is never listed, and
// a read-only opener beside the server never sees a header without chunks.
// `info` gives seq, hashes and counts; `bytes` is filled in.
Status WriteSnapshot(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, SnapshotInfo* info,
                     const ChunkSource& source);

// Snapshots whose header reads and checks, newest first. Damaged headers are
// reported in `problems` (naming the seq), not listed.
std::vector<SnapshotInfo> ListSnapshots(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf,
                                        std::vector<std::string>* problems = nullptr);

// Loads the snapshot at `seq` into an empty projection, checking every
// chunk's checksum and the recomputed state hash against the header.
Status LoadSnapshot(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, Seq seq,
                    Projection* projection, SnapshotInfo* info);

// Deletes all but the newest `keep` snapshots (and any parts without a header).
Status PruneSnapshots(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, size_t keep);

// The key of a snapshot part.
std::string SnapshotKey(Seq seq, uint32_t part);

}  // namespace ledger
