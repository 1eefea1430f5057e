// The memtables of the ledger's column families: a skiplist with one writer
// and lock-free readers, like RocksDB's own (InlineSkipList), plugged in
// through RocksDB's public MemTableRepFactory.
//
// Why not RocksDB's: Debian builds librocksdb without NDEBUG, so every
// skiplist insert also runs the debug checks of its splice (about two key
// comparisons per level, ~18 at a full memtable) through the comparator's
// virtual calls. Measured with callgrind on the Debian library, a log
// insert (keys in increasing order) cost ~2,700 instructions and an index
// insert ~6,600; the write thread spent 72% of its time there. This one
// compares keys inline (the bytewise order of the families, then newest
// first), and keeps the previous insert's place per level, so an insert
// after it (the log's next seq, a group's sorted index keys) searches only
// from there.
//
// What it assumes, and LogStore sets up: one writer per memtable at a time
// (allow_concurrent_memtable_write = false), and RocksDB's default bytewise
// comparator on every family that uses it (the order is compared inline).
#pragma once

#include <rocksdb/memtablerep.h>
#include <rocksdb/version.h>

#include <cstddef>
#include <memory>

namespace ledger {

// Whether this build of RocksDB can take the representation (it reaches
// RocksDB's arena through an interface of 7.x that is not installed).
inline constexpr bool kLedgerMemTableAvailable = ROCKSDB_MAJOR == 7;

// A new factory; null when !kLedgerMemTableAvailable (use RocksDB's).
std::shared_ptr<rocksdb::MemTableRepFactory> NewLedgerMemTableFactory();

// For families read by point lookups only, whose keys arrive in no order
// (by_key, payments): a hash table of `buckets` chains (rounded up to a
// power of two, in the memtable's arena), each insert one bucket; an
// iteration (the flush's) sorts a snapshot of the entries. Same
// assumptions as above; null when !kLedgerMemTableAvailable.
std::shared_ptr<rocksdb::MemTableRepFactory> NewLedgerPointMemTableFactory(size_t buckets);

}  // namespace ledger
