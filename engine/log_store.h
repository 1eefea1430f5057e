// The event log and its indexes in RocksDB (column families of
// ARCHITECTURE.md). The log is the truth; `by_user`, `by_key` and `payments`
// are derived from it and written in the same WriteBatch as each event.
#pragma once

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "engine/key_filter.h"
#include "events/codec.h"
#include "events/event.h"
#include "events/status.h"
#include "projections/projection.h"
#include "projections/user_state.h"

namespace ledger {

class WalPool;  // engine/wal_pool.h

struct StoreOptions {
  std::string dir;
  bool sync = true;        // fsync the WAL on every write (group commit shares it)
  bool read_only = false;  // open without writing: safe beside a running server
  // The write-ahead log's size before RocksDB flushes the families that keep
  // its oldest file alive. Bounds the WAL on disk and the replay after a
  // crash; without it one rarely written family (meta, snapshots) keeps
  // every WAL file since its last write.
  uint64_t wal_bytes_max = 128 << 20;
  // Size of the zero-filled files kept ready for new WAL files (WalPool);
  // 0 keeps none. Not used read-only.
  uint64_t wal_file_bytes = 0;
  // Whether flushes and compactions write their table files with O_DIRECT,
  // where the data directory's file system takes it (probed at open), or
  // through the page cache (the default). Through the page cache, the
  // kernel's writeback throttling keeps the table files' writes from
  // holding up the WAL's fdatasyncs; direct writes go to the disk as they
  // are made, and each group commit's sync waited behind them: on the EPYC
  // machine Cap'n Proto batches did 203,000-253,000 events/s direct against
  // 304,000-323,000 buffered, p99 83-98 against 28-32 ms, at the same CPU
  // per event (README, "What made it fast"). Direct saves the copy into the
  // page cache: on a machine whose disk kept up, 10-25% of the CPU per
  // event. A table file written through the page cache is also still there
  // for the next restart's replay.
  bool flush_direct_io = false;
};

// What `by_key` holds for (user_id, key): the event the key names, and for a
// pending top-up/grant that was activated since, the activation's seq.
struct KeyEntry {
  Seq seq = 0;
  Seq activation_seq = 0;
};

// What `payments` holds for a payment id (a top-up's key).
struct PaymentEntry {
  std::string user_id;
  Seq seq = 0;
};

// A group's pending index entries, key -> value, the last Put of a key
// winning: the texts in one buffer, found by the projection's open-addressing
// table of XXH3 hashes (UserIndex), so a group of a thousand commands
// allocates nothing per entry (a node-based map took a node and up to two
// strings each, and freed them all again when the group was recycled), and
// Clear keeps the capacity.
class PendingIndex {
 public:
  // Returns the key's hash, Hash(key).
  uint64_t Put(std::string_view key, std::string_view value);
  // The value Put last for `key` (whose hash is Hash(key)); nullopt when none.
  // Valid until the next Put.
  std::optional<std::string_view> Find(std::string_view key, uint64_t hash) const;
  static uint64_t Hash(std::string_view key);
  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  // Each (key, value) in ascending key order.
  template <typename F>
  void ForEachSorted(F f) {
    order_.resize(entries_.size());
    for (uint32_t i = 0; i < entries_.size(); ++i) order_[i] = i;
    std::sort(order_.begin(), order_.end(),
              [this](uint32_t a, uint32_t b) { return Key(a) < Key(b); });
    for (uint32_t i : order_) f(Key(i), Value(i));
  }
  void Clear();

 private:
  struct Entry {
    uint64_t hash;
    uint32_t key_at, key_size, value_at, value_size;
  };
  std::string_view Key(uint32_t i) const {
    return std::string_view(text_).substr(entries_[i].key_at, entries_[i].key_size);
  }
  std::string_view Value(uint32_t i) const {
    return std::string_view(text_).substr(entries_[i].value_at, entries_[i].value_size);
  }

  std::string text_;
  std::vector<Entry> entries_;
  UserIndex index_;  // hash -> position in entries_
  std::vector<uint32_t> order_;
};

// Index entries and events written by a writer's group and not yet
// committed. Lookups consult it first so a group sees its own writes, then
// `older`: the group before it while that one is still being written. At the
// write, Write() adds the index entries to the batch sorted by key, which
// makes RocksDB's memtable inserts cheap (the skiplist's insert hint stays
// valid between neighbours).
struct PendingWrites {
  PendingIndex by_key;               // encoded key -> value
  PendingIndex payments;             // payment key -> value
  std::vector<std::string> by_user;  // encoded keys
  // The group's events in seq order: a group's seqs are consecutive, so an
  // event is found by its distance from the first.
  std::vector<Event> events;
  const PendingWrites* older = nullptr;
  // The record being encoded, kept to reuse its buffer.
  std::string record;

  const Event* FindEvent(Seq seq) const {
    if (events.empty() || seq < events.front().seq) return nullptr;
    size_t i = seq - events.front().seq;
    return i < events.size() ? &events[i] : nullptr;
  }

  // Empty again; the indexes keep their capacity for the next group.
  void Clear() {
    by_key.Clear();
    payments.Clear();
    by_user.clear();
    events.clear();
    older = nullptr;
  }
};

// Generated keys (kGeneratedKeyPrefix, events/event.h) are not put in
// `by_key`: the seq in the key finds the event, and GetKey checks it.

// One event in this many of each user gets a `by_user` entry; the others are
// reached through the `prev_user_seq` links. An index entry per event was a
// random-position memtable insert each, the largest single cost of an append
// (one in 16 made in-process ingestion ~1.5x faster); a history page walks at
// most 2 * kByUserEvery links more than it reads.
inline constexpr uint32_t kByUserEvery = 16;

// User heads read from `projection` (its users' `last_seq`). Unlocked: as
// is for a projection nobody changes any more (a read-only opener's, after
// recovery); the ledger wraps it in the projection's lock.
std::function<Seq(std::string_view)> HeadsOf(const Projection& projection);

class LogStore {
 public:
  static Status Open(const StoreOptions& options, std::unique_ptr<LogStore>* out);
  ~LogStore();
  LogStore(const LogStore&) = delete;
  LogStore& operator=(const LogStore&) = delete;

  const StoreOptions& options() const { return options_; }
  // Whether flushes and compactions write with O_DIRECT (asked for, and the
  // file system takes it): RocksDB's own option, as Open set it.
  bool flush_direct_io() const;
  // The prepared WAL files, or null when options().wal_file_bytes is 0.
  WalPool* wal_pool() const { return wal_pool_.get(); }

  // --- lookups (committed data, plus `pending` when given) ---
  // `resolve_generated`: also find events named by a generated key (which
  // have no by_key entry) by reading the seq the key names.
  std::optional<KeyEntry> GetKey(std::string_view user_id, std::string_view key,
                                 const PendingWrites* pending = nullptr,
                                 bool resolve_generated = true);
  std::optional<PaymentEntry> GetPayment(std::string_view payment_key,
                                         const PendingWrites* pending = nullptr);
  // The in-process filters of `by_key` and `payments` (KeyFilter): lookups
  // they rule out skip RocksDB once they hold every key written before the
  // open. StartKeyFilterFill fills them in a background thread (the ledger
  // calls it after recovery, which it would only slow down); until they are
  // ready, and always in a read-only store, every lookup asks RocksDB.
  void StartKeyFilterFill();
  bool KeyFiltersReady() const;
  // Reads and decodes one event (no chain check; the audit does that).
  Status ReadEvent(Seq seq, Event* event, const PendingWrites* pending = nullptr,
                   DecodeScope scope = DecodeScope::kAll);
  Status ReadRecord(Seq seq, std::string* record);

  // Whether a generated key (kGeneratedKeyPrefix...) is taken in `by_key`
  // already, by a client that used that text as its key. Only the thread writing
  // groups (the writer's, or a caller writing its own; Writer::Submit).
  // Skips the lookup while no `by_key` entry has the prefix (meta
  // "prefixed_keys"), which is nearly always: most commands without a key
  // then cost no index read.
  bool GeneratedKeyTaken(std::string_view user_id, std::string_view key,
                         const PendingWrites* pending);

  // A user's history is a chain: each event names the user's previous one
  // (`prev_user_seq`). Readers start with NewestUserSeq and step with
  // PreviousUserSeq on each event they read, so no event is read twice.
  //
  // The user's newest event strictly below `before_seq` (0: no bound); 0
  // when there is none. `by_user` indexes every kByUserEvery-th event of a
  // user, so this is one seek and a short walk; the newest event comes from
  // the user heads (SetUserHeads).
  Status NewestUserSeq(std::string_view user_id, Seq before_seq, Seq* seq);
  // The event before `event` in `user_id`'s history (0: none); an error when
  // `event` is not a link of that history (damage).
  static Status PreviousUserSeq(const Event& event, std::string_view user_id, Seq* prev);

  // Where NewestUserSeq finds a user's newest durable event (0: the user has
  // none): the projection's `last_seq`. Set by whoever opens the store for
  // reading histories (the ledger; ledger-read over a data directory).
  using UserHeads = std::function<Seq(std::string_view user_id)>;
  void SetUserHeads(UserHeads heads) { user_heads_ = std::move(heads); }

  // The last seq in the log (0 when empty) and its record's checksum.
  Status LastRecord(Seq* seq, uint64_t* checksum);

  // --- writing (one thread at a time: the writer, or the write thread for a
  // group handed to it; groups in order) ---
  // Adds `event` and its index entries to `pending` (its log record is
  // encoded by Write). `activated_top_up` tells an activation whether its
  // target is a top-up (whose new key then becomes a payment id);
  // `generated_key` that the event's key was generated (no by_key entry).
  // `index_user`: also put the event in `by_user` (the writer does for every
  // kByUserEvery-th event of a user).
  void AddEvent(Event&& event, bool activated_top_up, bool generated_key, bool index_user,
                rocksdb::WriteBatch* batch, PendingWrites* pending);
  // One write for a whole group: the log records of `pending`'s events,
  // chained from `*checksum` (left at the last one's), then their index
  // entries, added to `batch`. Encoding here rather than in AddEvent lets a
  // group handed to the write thread be encoded there, off the writer.
  // `sync`: synced before it returns (unless the store was opened with sync
  // off); otherwise in RocksDB and the WAL file, not yet durable, until a
  // SyncWal() that starts after it returns.
  Status Write(rocksdb::WriteBatch* batch, PendingWrites& pending, uint64_t* checksum, bool sync);
  // Makes every write that returned before the call durable (fdatasync of the
  // WAL files); safe while another thread writes. Nothing to do with sync off.
  Status SyncWal();
  // Every family's memtables written to table files (RocksDB starts a new
  // WAL file, and deletes the ones no memtable needs any more).
  Status Flush();

  // --- meta ---
  Status GetMeta(std::string_view name, std::string* value);
  // The balance bounds the log was written with (meta "bounds", "MIN..MAX");
  // the defaults when the log predates them.
  Bounds StoredBounds();
  Status PutMeta(std::string_view name, std::string_view value);

  // --- raw access for replay, snapshots and tests ---
  rocksdb::DB* db() { return db_.get(); }
  rocksdb::ColumnFamilyHandle* log_cf() { return cfs_[kLog]; }
  rocksdb::ColumnFamilyHandle* snapshots_cf() { return cfs_[kSnapshots]; }
  rocksdb::ColumnFamilyHandle* by_user_cf() { return cfs_[kByUser]; }
  rocksdb::ColumnFamilyHandle* by_key_cf() { return cfs_[kByKey]; }
  rocksdb::ColumnFamilyHandle* payments_cf() { return cfs_[kPayments]; }

  // Index key encodings.
  static std::string ByKeyKey(std::string_view user_id, std::string_view key);
  static std::string ByUserKey(std::string_view user_id, Seq seq);
  static std::string EncodeKeyEntry(KeyEntry entry);
  static std::string EncodePayment(const PaymentEntry& entry);

 private:
  enum Family { kDefault, kLog, kByUser, kByKey, kPayments, kSnapshots, kMeta, kFamilyCount };
  LogStore() = default;
  // The filters' fill from the keys already in `by_key` and `payments`
  // (the filler thread).
  void FillKeyFilters();
  // On a clean close, after the last flush: waits for the compactions
  // RocksDB has due, which closing would abort and the next open would
  // start again while clients are served (at most 30 s; it stops waiting
  // when RocksDB runs none for 2 s).
  void FinishCompactions();

  StoreOptions options_;
  // Declared before db_ so that they outlive it.
  std::shared_ptr<WalPool> wal_pool_;
  std::unique_ptr<rocksdb::Env> env_;
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> cfs_;
  rocksdb::WriteOptions write_options_;
  UserHeads user_heads_;
  bool prefixed_keys_ = true;  // a by_key entry has the generated prefix (or unknown)
  // Null read-only. Every key AddEvent puts in a family is added to its
  // filter first, so a key not in the filter is in neither pending writes
  // nor RocksDB.
  std::unique_ptr<KeyFilter> by_key_filter_;
  std::unique_ptr<KeyFilter> payments_filter_;
  std::atomic<bool> stop_filling_{false};
  std::thread filler_;
};

}  // namespace ledger
