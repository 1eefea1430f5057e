// An in-process bloom filter over the XXH3 hashes of an index family's keys
// (`by_key`, `payments`), asked before a RocksDB Get. Nearly every lookup of
// a new command's key misses, and a miss in Debian's librocksdb costs about
// 2,200 instructions (its build keeps SyncPoint, perf-context and assertion
// code on the read path), however good the table and memtable filters are;
// this filter answers most misses in a few dozen.
//
// It says "maybe" for every key until it is ready: the store fills it from
// the family's existing keys in the background after an open, and every key
// written from the open on is added before its write. Keys are never taken
// out (the families only grow), so a "no" is always right.
//
// Levels of cache-line blocked bloom filters (one 64-byte block per key, six
// bits in it, about ten bits per key): when a level holds its capacity the
// next, four times larger, takes new keys, and a lookup asks every level.
// Neither lookups nor adds take a lock (atomic words, a level's count
// taken with fetch_add, levels published with release); only the add that
// finds its level full takes one, to add the next.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>

namespace ledger {

class KeyFilter {
 public:
  // `expected_keys`: the first level's capacity (grown as needed).
  explicit KeyFilter(size_t expected_keys = 0);
  ~KeyFilter();
  KeyFilter(const KeyFilter&) = delete;
  KeyFilter& operator=(const KeyFilter&) = delete;

  // Safe beside other adds and lookups.
  void Add(uint64_t hash);
  // False only when no key with this hash was added (and the filter is ready).
  bool MayContain(uint64_t hash) const;

  // Every key that was in the family before the open has been added.
  void SetReady() { ready_.store(true, std::memory_order_release); }
  bool ready() const { return ready_.load(std::memory_order_acquire); }

  size_t keys() const;
  size_t bytes() const;

  static constexpr int kMaxLevels = 24;

 private:
  struct Level;
  // The level after `full` (added by the first caller to find `full` full),
  // with a place in it taken.
  Level* NextLevel(Level* full);
  template <typename F>
  size_t SumOverLevels(F f) const;

  std::mutex grow_mu_;  // NextLevel
  std::atomic<Level*> levels_[kMaxLevels] = {};
  std::atomic<int> level_count_{0};
  std::atomic<bool> ready_{false};
};

}  // namespace ledger
