#include "engine/log_store.h"

#include <rocksdb/convenience.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/table.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include <xxhash.h>

#include "engine/memtable_rep.h"
#include "engine/text.h"
#include "engine/wal_pool.h"
#include "events/codec.h"

namespace ledger {

namespace {

constexpr const char* kFamilyNames[] = {"default",  "log",       "by_user", "by_key",
                                        "payments", "snapshots", "meta"};

// Every family's memtable is the ledger's skiplist (engine/memtable_rep.h)
// where this RocksDB can take it: Debian's librocksdb runs its own skiplist
// with its debug checks on. That skiplist keeps its own place between
// inserts, so the families need no insert hint. Else RocksDB's, with a
// group's sorted keys as a hint: a skiplist insert walks up from the
// group's previous key instead of searching from the top (one hint for the
// family: the prefix is empty).
rocksdb::ColumnFamilyOptions Memtable(rocksdb::ColumnFamilyOptions o, bool hinted) {
  static const std::shared_ptr<rocksdb::MemTableRepFactory> factory = NewLedgerMemTableFactory();
  if (factory) {
    o.memtable_factory = factory;
  } else if (hinted) {
    o.memtable_insert_with_hint_prefix_extractor.reset(rocksdb::NewFixedPrefixTransform(0));
  }
  return o;
}

// Tiered ("universal") compaction for the index families, whose keys
// arrive in no order (by user, by key, by payment id): a merge waits for
// eight sorted runs and takes runs of about the same size. Under leveled
// compaction every compaction from level 0 rewrote nearly all of level 1,
// which grows with the log. RocksDB's compactions over three minutes of
// Cap'n Proto batches, in us of CPU per event (the first 30 s, the last,
// the mean): all three leveled 0.36, 1.91, 1.17-1.20; by_key and payments
// tiered 0.24, 0.82, 0.63-0.68; all three tiered 0.17-0.18, 0.39-0.64,
// 0.37-0.41 (two runs).
// Leveled with 32 or 64 level-0 files a compaction saved less, and cost the
// writer: every lookup the key filters let through checks one bloom filter
// per level-0 file, as it now does per sorted run. A history read's seek
// in by_user visits each sorted run (point-in-time balances 5-16% slower,
// 0.18 -> 0.19 ms when cached). A directory written under leveled
// compaction opens as it is: each of its levels is one sorted run.
void Tiered(rocksdb::ColumnFamilyOptions* o) {
  o->compaction_style = rocksdb::kCompactionStyleUniversal;
  o->level0_file_num_compaction_trigger = 8;  // sorted runs before a merge
  o->level0_slowdown_writes_trigger = 40;
  o->level0_stop_writes_trigger = 60;
}

// The log's table files in LZ4 where this librocksdb has it (Debian's
// does), else uncompressed. Its blocks of packed records still repeat the
// texts of the users, keys and metadata, and LZ4 takes about half off them
// (1,420 -> 761 MB for 7.7-8.1M events of the benchmark's load). Those bytes
// were half of what a flush writes, and on a virtual disk every group
// commit's fdatasync ends in a cache flush that also carries the table
// writes in flight: in Cap'n Proto batches the disk took 541-556 -> 448-480
// bytes per event, its cache flushes 0.93-1.57 -> 0.69-1.11 ms, and the
// server 354,705-447,152 -> 374,790-480,077 events/s at 4 and 8
// connections, at no more CPU per event (fewer new page-cache pages to
// fill). A full audit replay reads them no slower per event (0.71-0.82
// against 0.74-0.97 us, three alternating runs).
rocksdb::CompressionType LogCompression() {
  static const rocksdb::CompressionType type = [] {
    for (rocksdb::CompressionType t : rocksdb::GetSupportedCompressions()) {
      if (t == rocksdb::kLZ4Compression) return t;
    }
    return rocksdb::kNoCompression;
  }();
  return type;
}

rocksdb::ColumnFamilyOptions LogFamilyOptions() {
  // The log is append-only in seq order: large memtables.
  rocksdb::ColumnFamilyOptions o;
  o.compression = LogCompression();
  o.write_buffer_size = 64 << 20;
  return Memtable(o, /*hinted=*/false);
}

rocksdb::ColumnFamilyOptions IndexFamilyOptions() {
  // Point lookups that usually miss (a new key): bloom filters on tables and
  // memtables make a miss cheap.
  rocksdb::ColumnFamilyOptions o;
  rocksdb::BlockBasedTableOptions t;
  t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10, false));
  t.whole_key_filtering = true;
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
  o.memtable_whole_key_filtering = true;
  o.memtable_prefix_bloom_size_ratio = 0.05;
  o.write_buffer_size = 32 << 20;
  Tiered(&o);
  // Read by point lookups only (and the key filters' fill at open): a hash
  // memtable, ~1.3 entries a bucket when full (an entry is ~90 bytes).
  static const std::shared_ptr<rocksdb::MemTableRepFactory> point =
      NewLedgerPointMemTableFactory(std::size_t{1} << 18);
  if (point) {
    o.memtable_factory = point;
    return o;
  }
  return Memtable(o, /*hinted=*/true);
}

rocksdb::ColumnFamilyOptions FamilyOptions(int family) {
  switch (family) {
    case 1:
      return LogFamilyOptions();
    case 2: {
      rocksdb::ColumnFamilyOptions o;
      Tiered(&o);
      return Memtable(o, /*hinted=*/true);
    }
    case 3:
    case 4:
      return IndexFamilyOptions();
    default:
      return Memtable(rocksdb::ColumnFamilyOptions(), /*hinted=*/false);
  }
}

void PutBE64(std::string* out, uint64_t v) { AppendSeqKey(v, out); }

// Whether `dir`'s file system takes O_DIRECT writes: one aligned block
// written to a probe file. Some refuse the open or the write (ramfs, older
// tmpfs, some network and FUSE file systems); RocksDB would then fail its
// first flush.
bool DirectIoWorks(const std::string& dir) {
  alignas(4096) static constexpr char kBlock[4096] = {};
  std::string probe = dir + "/ledger-direct-io-probe";
  int fd = ::open(probe.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_DIRECT | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  bool ok = ::pwrite(fd, kBlock, sizeof kBlock, 0) == static_cast<ssize_t>(sizeof kBlock);
  ::close(fd);
  ::unlink(probe.c_str());
  return ok;
}

}  // namespace

std::function<Seq(std::string_view)> HeadsOf(const Projection& projection) {
  return [&projection](std::string_view user_id) {
    const UserState* state = projection.Find(user_id);
    return state ? state->last_seq : Seq{0};
  };
}

LogStore::~LogStore() {
  stop_filling_.store(true, std::memory_order_relaxed);
  if (filler_.joinable()) filler_.join();
  if (db_ && !options_.read_only) {
    // A clean close leaves an empty WAL, so the next open does not re-insert
    // the tail of the log into memtables before replaying it.
    (void)Flush();  // a failure here leaves the WAL to the next open
    FinishCompactions();
  }
  for (auto* cf : cfs_) {
    if (cf != nullptr && db_) db_->DestroyColumnFamilyHandle(cf).PermitUncheckedError();
  }
  if (db_) db_->Close().PermitUncheckedError();
}

void LogStore::FinishCompactions() {
  // The last flush adds a level-0 table to each family; every few restarts
  // that makes a compaction due. Aborted by the close, it would run again
  // right after the next open: measured on a directory of 10M events, the
  // by_key family's (40 MB, 1.4 s, most of it CPU on a 2-core machine) made
  // one client's p99 over the first two seconds after the restart 2.9 and
  // 1.5 ms, against 0.2-0.35 when none was due. Here nothing is served.
  auto running = [this] {
    uint64_t n = 0;
    return db_->GetIntProperty("rocksdb.num-running-compactions", &n) ? n : 0;
  };
  auto pending = [this] {
    for (auto* cf : cfs_) {
      uint64_t n = 0;
      if (db_->GetIntProperty(cf, "rocksdb.compaction-pending", &n) && n > 0) return true;
    }
    return false;
  };
  using std::chrono::steady_clock;
  auto start = steady_clock::now();
  auto last_running = start;
  bool told = false;
  for (;;) {
    auto now = steady_clock::now();
    if (running() > 0) {
      last_running = now;
    } else if (!pending() || now - last_running > std::chrono::seconds(2)) {
      break;  // done, or RocksDB is not taking up what it says is due
    }
    if (now - start > std::chrono::seconds(30)) break;
    if (!told && now - start > std::chrono::milliseconds(200)) {
      std::fprintf(stderr, "ledger: finishing a compaction before closing\n");
      told = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

Status LogStore::Open(const StoreOptions& options, std::unique_ptr<LogStore>* out) {
  std::unique_ptr<LogStore> store(new LogStore());
  store->options_ = options;
  std::error_code ec;
  if (!options.read_only) {
    std::filesystem::create_directories(options.dir, ec);
    if (ec)
      return Status::Error("cannot create data directory " + options.dir + ": " + ec.message());
  } else if (!std::filesystem::exists(std::filesystem::path(options.dir) / "CURRENT")) {
    return Status::Error("no ledger data in " + options.dir);
  }
  rocksdb::DBOptions db_options;
  db_options.create_if_missing = !options.read_only;
  db_options.create_missing_column_families = !options.read_only;
  // One flush and one compaction at a time, as with 2, but up to three
  // compactions while RocksDB reckons a family behind (level 0, or the
  // sorted runs, past twice the compaction trigger or a quarter of the way
  // to the slowdown): the indexes' tiered merges take whole sorted runs (6 s
  // for one of 17M keys here, growing with the family), and behind a single
  // compaction thread the log family's level 0 would pile up until writes
  // slowed.
  db_options.max_background_jobs = 4;
  db_options.bytes_per_sync = 1 << 20;
  db_options.use_direct_io_for_flush_and_compaction =
      !options.read_only && options.flush_direct_io && DirectIoWorks(options.dir);
  db_options.max_total_wal_size = options.wal_bytes_max;
  // One writer at a time inserts into a memtable (the ledger's skiplist
  // takes no concurrent inserts; the ledger has one writer anyway).
  db_options.allow_concurrent_memtable_write = false;
  // WAL files written over zeros (see WalPool). RocksDB's own reuse of old
  // WAL files (recycle_log_file_num) would do the same, but RocksDB turns it
  // off under the point-in-time WAL recovery this store relies on (its
  // OPTIONS file says recycle_log_file_num=0).
  if (!options.read_only && options.wal_file_bytes > 0) {
    store->wal_pool_ = std::make_shared<WalPool>(rocksdb::FileSystem::Default(), options.dir,
                                                 options.wal_file_bytes, /*spares=*/2);
    store->env_ = rocksdb::NewCompositeEnv(store->wal_pool_);
    db_options.env = store->env_.get();
  }
  std::vector<rocksdb::ColumnFamilyDescriptor> families;
  for (int i = 0; i < kFamilyCount; ++i) {
    families.emplace_back(kFamilyNames[i], FamilyOptions(i));
  }
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s;
  if (options.read_only) {
    // Beside a running server: keep every table file open from the start, so
    // a compaction deleting one later does not matter; and if one listed in
    // the manifest vanished during the open itself, open again.
    db_options.max_open_files = -1;
    for (int attempt = 0; attempt < 20; ++attempt) {
      store->cfs_.clear();
      s = rocksdb::DB::OpenForReadOnly(db_options, options.dir, families, &store->cfs_, &raw);
      if (s.ok() || (!s.IsIOError() && !s.IsCorruption() && !s.IsPathNotFound())) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  } else {
    s = rocksdb::DB::Open(db_options, options.dir, families, &store->cfs_, &raw);
  }
  if (!s.ok()) {
    return Status::Error("cannot open ledger data in " + options.dir + ": " + s.ToString());
  }
  store->db_.reset(raw);
  store->write_options_.sync = options.sync;
  std::string prefixed;
  Seq last_seq = 0;
  uint64_t last_checksum = 0;
  if (store->GetMeta("prefixed_keys", &prefixed).ok()) {
    store->prefixed_keys_ = prefixed != "0";
  } else if (store->LastRecord(&last_seq, &last_checksum).ok() && last_seq == 0 &&
             !options.read_only) {
    // A new log has no keys at all. (A log written before this entry existed
    // keeps the lookups: it may have some.)
    Status ps = store->PutMeta("prefixed_keys", "0");
    if (!ps.ok()) return ps;
    store->prefixed_keys_ = false;
  }
  if (!options.read_only) {
    // Sized for the keys there are (RocksDB's estimate), with room to grow
    // before a second level is needed.
    auto sized = [&](Family family) {
      uint64_t n = 0;
      if (!store->db_->GetIntProperty(store->cfs_[family], "rocksdb.estimate-num-keys", &n)) n = 0;
      return std::make_unique<KeyFilter>(2 * n);
    };
    store->by_key_filter_ = sized(kByKey);
    store->payments_filter_ = sized(kPayments);
  }
  *out = std::move(store);
  return Status::Ok();
}

bool LogStore::flush_direct_io() const {
  return db_->GetDBOptions().use_direct_io_for_flush_and_compaction;
}

void LogStore::FillKeyFilters() {
  const std::pair<Family, KeyFilter*> filters[] = {{kByKey, by_key_filter_.get()},
                                                   {kPayments, payments_filter_.get()}};
  for (auto [family, filter] : filters) {
    // A snapshot of the family: the keys written after it are added by
    // AddEvent (which adds every key it writes, from the open on).
    rocksdb::ReadOptions ro;
    ro.fill_cache = false;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, cfs_[family]));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      if (stop_filling_.load(std::memory_order_relaxed)) return;
      filter->Add(PendingIndex::Hash(std::string_view(it->key().data(), it->key().size())));
    }
    if (!it->status().ok()) {
      // Not ready: every lookup keeps asking RocksDB, which is right, only slower.
      std::fprintf(stderr, "ledger: %s key filter not filled: %s\n", kFamilyNames[family],
                   it->status().ToString().c_str());
      continue;
    }
    filter->SetReady();
  }
}

void LogStore::StartKeyFilterFill() {
  if (by_key_filter_ && !filler_.joinable()) filler_ = std::thread([this] { FillKeyFilters(); });
}

bool LogStore::KeyFiltersReady() const {
  return by_key_filter_ && by_key_filter_->ready() && payments_filter_->ready();
}

uint64_t PendingIndex::Hash(std::string_view key) { return XXH3_64bits(key.data(), key.size()); }

uint64_t PendingIndex::Put(std::string_view key, std::string_view value) {
  uint64_t hash = Hash(key);
  uint32_t at = index_.Find(key, hash, [this](uint32_t i) { return Key(i); });
  uint32_t value_at = static_cast<uint32_t>(text_.size());
  text_.append(value);
  if (at != UserIndex::kEmpty) {  // a later Put of the key: its new value wins
    entries_[at].value_at = value_at;
    entries_[at].value_size = static_cast<uint32_t>(value.size());
    return hash;
  }
  uint32_t key_at = static_cast<uint32_t>(text_.size());
  text_.append(key);
  index_.Insert(hash, static_cast<uint32_t>(entries_.size()));
  entries_.push_back(Entry{hash, key_at, static_cast<uint32_t>(key.size()), value_at,
                           static_cast<uint32_t>(value.size())});
  return hash;
}

std::optional<std::string_view> PendingIndex::Find(std::string_view key, uint64_t hash) const {
  uint32_t at = index_.Find(key, hash, [this](uint32_t i) { return Key(i); });
  if (at == UserIndex::kEmpty) return std::nullopt;
  return Value(at);
}

void PendingIndex::Clear() {
  index_.Clear([this](const auto& f) {
    for (const Entry& e : entries_) f(e.hash);
  });
  entries_.clear();
  text_.clear();
}

std::string LogStore::ByKeyKey(std::string_view user_id, std::string_view key) {
  std::string k;
  k.reserve(user_id.size() + 1 + key.size());
  k.append(user_id);
  k.push_back('\0');
  k.append(key);
  return k;
}

std::string LogStore::ByUserKey(std::string_view user_id, Seq seq) {
  std::string k;
  k.reserve(user_id.size() + 9);
  k.append(user_id);
  k.push_back('\0');
  PutBE64(&k, seq);
  return k;
}

std::string LogStore::EncodeKeyEntry(KeyEntry e) {
  std::string v;
  PutBE64(&v, e.seq);
  if (e.activation_seq != 0) PutBE64(&v, e.activation_seq);
  return v;
}

std::string LogStore::EncodePayment(const PaymentEntry& e) {
  std::string v;
  PutBE64(&v, e.seq);
  v.append(e.user_id);
  return v;
}

namespace {
KeyEntry DecodeKeyEntry(std::string_view v) {
  KeyEntry e;
  e.seq = DecodeSeqKey(v.substr(0, 8));
  if (v.size() >= 16) e.activation_seq = DecodeSeqKey(v.substr(8, 8));
  return e;
}
PaymentEntry DecodePayment(std::string_view v) {
  PaymentEntry e;
  e.seq = DecodeSeqKey(v.substr(0, 8));
  e.user_id = std::string(v.substr(8));
  return e;
}
// The first hit of `find` (a lookup in one group's pending writes, a
// pointer or null) in the group deciding (`pending`) or in the groups still
// being written before it (`older`); null when in none.
template <typename Find>
auto FindPending(const PendingWrites* pending, Find find) -> decltype(find(*pending)) {
  for (const PendingWrites* p = pending; p != nullptr; p = p->older) {
    if (auto hit = find(*p)) return hit;
  }
  return nullptr;
}

// `key`'s value (`hash`: PendingIndex::Hash(key)) in one of the pending
// writes' indexes.
std::optional<std::string_view> FindPending(const PendingWrites* pending,
                                            PendingIndex PendingWrites::*index,
                                            std::string_view key, uint64_t hash) {
  for (const PendingWrites* p = pending; p != nullptr; p = p->older) {
    if (std::optional<std::string_view> v = (p->*index).Find(key, hash)) return v;
  }
  return std::nullopt;
}

// Whether `filter` (null: none) lets a key with this hash be in its family.
bool MayHold(const std::unique_ptr<KeyFilter>& filter, uint64_t hash) {
  return !filter || filter->MayContain(hash);
}

}  // namespace

std::optional<KeyEntry> LogStore::GetKey(std::string_view user_id, std::string_view key,
                                         const PendingWrites* pending, bool resolve_generated) {
  std::string k = ByKeyKey(user_id, key);
  uint64_t hash = PendingIndex::Hash(k);
  if (std::optional<std::string_view> v = FindPending(pending, &PendingWrites::by_key, k, hash)) {
    return DecodeKeyEntry(*v);
  }
  if (MayHold(by_key_filter_, hash)) {
    std::string v;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), cfs_[kByKey], k, &v);
    if (s.ok() && v.size() >= 8) return DecodeKeyEntry(v);
  }
  if (!resolve_generated) return std::nullopt;
  // A generated key names its seq: "ledger:<seq>" or "ledger:<seq>.<n>".
  if (key.substr(0, kGeneratedKeyPrefix.size()) != kGeneratedKeyPrefix) return std::nullopt;
  std::string_view digits = key.substr(kGeneratedKeyPrefix.size());
  digits = digits.substr(0, digits.find('.'));
  std::optional<uint64_t> parsed = ParseDecimal(digits);
  if (!parsed) return std::nullopt;
  Seq seq = *parsed;
  Event e;
  if (!ReadEvent(seq, &e, pending).ok() || e.user_id != user_id || e.key != key ||
      e.kind == Kind::kActivate) {
    return std::nullopt;
  }
  return KeyEntry{seq, 0};
}

bool LogStore::GeneratedKeyTaken(std::string_view user_id, std::string_view key,
                                 const PendingWrites* pending) {
  return prefixed_keys_ && GetKey(user_id, key, pending, false).has_value();
}

std::optional<PaymentEntry> LogStore::GetPayment(std::string_view payment_key,
                                                 const PendingWrites* pending) {
  uint64_t hash = PendingIndex::Hash(payment_key);
  if (std::optional<std::string_view> v =
          FindPending(pending, &PendingWrites::payments, payment_key, hash)) {
    return DecodePayment(*v);
  }
  if (!MayHold(payments_filter_, hash)) return std::nullopt;
  std::string v;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), cfs_[kPayments],
                               rocksdb::Slice(payment_key.data(), payment_key.size()), &v);
  if (!s.ok() || v.size() < 8) return std::nullopt;
  return DecodePayment(v);
}

Status LogStore::ReadRecord(Seq seq, std::string* record) {
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), cfs_[kLog], SeqKey(seq), record);
  if (s.IsNotFound()) return Status::Error("seq " + std::to_string(seq) + ": no such record");
  if (!s.ok()) return Status::Error("seq " + std::to_string(seq) + ": " + s.ToString());
  return Status::Ok();
}

Status LogStore::ReadEvent(Seq seq, Event* event, const PendingWrites* pending, DecodeScope scope) {
  if (const Event* e =
          FindPending(pending, [seq](const PendingWrites& p) { return p.FindEvent(seq); })) {
    *event = *e;
    return Status::Ok();
  }
  std::string record;
  Status s = ReadRecord(seq, &record);
  if (!s.ok()) return s;
  if (record.size() < 16) return Status::Error("seq " + std::to_string(seq) + ": short record");
  s = DecodeEvent(std::string_view(record).substr(0, record.size() - 8), event, scope);
  if (!s.ok()) return Status::Error("seq " + std::to_string(seq) + ": " + s.message());
  return Status::Ok();
}

Status LogStore::PreviousUserSeq(const Event& event, std::string_view user_id, Seq* prev) {
  // A link to another user's event, or forwards, is damage.
  if (event.user_id != user_id || event.prev_user_seq >= event.seq) {
    return Status::Error("seq " + std::to_string(event.seq) + ": not a link in the history of " +
                         std::string(user_id));
  }
  *prev = event.prev_user_seq;
  return Status::Ok();
}

Status LogStore::NewestUserSeq(std::string_view user_id, Seq before_seq, Seq* seq) {
  if (!user_heads_) {
    std::fprintf(stderr, "ledger: FATAL: histories read from a store without user heads\n");
    std::abort();
  }
  Seq head = user_heads_(user_id);
  *seq = head;
  if (before_seq == 0 || before_seq > head) return Status::Ok();
  // Start at the user's first indexed event at or after `before_seq` (or the
  // newest), and follow the links below `before_seq`.
  std::string from = ByUserKey(user_id, before_seq);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cfs_[kByUser]));
  it->Seek(from);
  size_t prefix = user_id.size() + 1;
  if (it->Valid() && it->key().size() == prefix + 8 &&
      it->key().starts_with(rocksdb::Slice(from.data(), prefix))) {
    Seq indexed = DecodeSeqKey(std::string_view(it->key().data() + prefix, 8));
    if (indexed <= head) *seq = indexed;  // (an entry written but not yet published)
  }
  if (!it->status().ok()) return Status::Error("by_user: " + it->status().ToString());
  while (*seq >= before_seq) {
    Event e;
    Status s = ReadEvent(*seq, &e, nullptr, DecodeScope::kFold);
    if (!s.ok()) return s;
    s = PreviousUserSeq(e, user_id, seq);
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

Status LogStore::LastRecord(Seq* seq, uint64_t* checksum) {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cfs_[kLog]));
  it->SeekToLast();
  if (!it->Valid()) {
    *seq = 0;
    *checksum = kGenesisChecksum;
    return Status::Ok();
  }
  *seq = DecodeSeqKey(std::string_view(it->key().data(), it->key().size()));
  rocksdb::Slice v = it->value();
  if (v.size() < 16) return Status::Error("seq " + std::to_string(*seq) + ": short record");
  *checksum = StoredChecksum(std::string_view(v.data(), v.size()));
  return Status::Ok();
}

void LogStore::AddEvent(Event&& e, bool activated_top_up, bool generated_key, bool index_user,
                        rocksdb::WriteBatch* batch, PendingWrites* pending) {
  // Each key in its family's filter before it is written (KeyFilter).
  auto put_key = [&](std::string_view key, KeyEntry entry) {
    by_key_filter_->Add(pending->by_key.Put(ByKeyKey(e.user_id, key), EncodeKeyEntry(entry)));
    if (!prefixed_keys_ && key.substr(0, kGeneratedKeyPrefix.size()) == kGeneratedKeyPrefix) {
      // From now on generated keys must be looked up (GeneratedKeyTaken).
      prefixed_keys_ = true;
      batch->Put(cfs_[kMeta], "prefixed_keys", "1");
    }
  };
  auto put_payment = [&](std::string_view key, Seq seq) {
    payments_filter_->Add(pending->payments.Put(key, EncodePayment(PaymentEntry{e.user_id, seq})));
  };
  if (index_user) pending->by_user.push_back(ByUserKey(e.user_id, e.seq));
  if (e.kind == Kind::kActivate) {
    // The activation folds into the transaction it activates: both its old
    // and new key name the original event, now with its activation.
    KeyEntry entry{e.ref_seq, e.seq};
    put_key(e.ref_key, entry);
    if (!e.new_key.empty()) {
      put_key(e.new_key, entry);
      if (activated_top_up) put_payment(e.new_key, e.ref_seq);
    }
  } else {
    if (!generated_key) put_key(e.key, KeyEntry{e.seq, 0});
    if (e.kind == Kind::kTopUp) put_payment(e.key, e.seq);
  }
  assert(pending->events.empty() || e.seq == pending->events.back().seq + 1);
  pending->events.push_back(std::move(e));
}

Status LogStore::Write(rocksdb::WriteBatch* batch, PendingWrites& pending, uint64_t* checksum,
                       bool sync) {
  std::string& record = pending.record;
  for (const Event& e : pending.events) {
    record.clear();
    *checksum = EncodeRecord(e, *checksum, &record);
    batch->Put(cfs_[kLog], SeqKey(e.seq), record);
  }
  std::vector<std::string_view> keys(pending.by_user.begin(), pending.by_user.end());
  std::sort(keys.begin(), keys.end());
  for (std::string_view k : keys) {
    batch->Put(cfs_[kByUser], rocksdb::Slice(k.data(), k.size()), rocksdb::Slice());
  }
  auto put_sorted = [&](PendingIndex& entries, rocksdb::ColumnFamilyHandle* cf) {
    entries.ForEachSorted([&](std::string_view k, std::string_view v) {
      batch->Put(cf, rocksdb::Slice(k.data(), k.size()), rocksdb::Slice(v.data(), v.size()));
    });
  };
  put_sorted(pending.by_key, cfs_[kByKey]);
  put_sorted(pending.payments, cfs_[kPayments]);
  rocksdb::WriteOptions options = write_options_;
  options.sync = options.sync && sync;
  rocksdb::Status s = db_->Write(options, batch);
  if (!s.ok()) return Status::Error("log write failed: " + s.ToString());
  return Status::Ok();
}

Status LogStore::Flush() {
  rocksdb::Status s = db_->Flush(rocksdb::FlushOptions(), cfs_);
  return s.ok() ? Status::Ok() : Status::Error("flush: " + s.ToString());
}

Status LogStore::SyncWal() {
  if (!write_options_.sync) return Status::Ok();
  rocksdb::Status s = db_->SyncWAL();
  if (!s.ok()) return Status::Error("log sync failed: " + s.ToString());
  return Status::Ok();
}

Status LogStore::GetMeta(std::string_view name, std::string* value) {
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), cfs_[kMeta],
                               rocksdb::Slice(name.data(), name.size()), value);
  if (!s.ok()) return Status::Error(std::string(name) + ": " + s.ToString());
  return Status::Ok();
}

Bounds LogStore::StoredBounds() {
  Bounds b;
  std::string text;
  if (!GetMeta("bounds", &text).ok()) return b;
  size_t dots = text.find("..");
  if (dots == std::string::npos) return b;
  b.min = std::stoll(text.substr(0, dots));
  b.max = std::stoll(text.substr(dots + 2));
  return b;
}

Status LogStore::PutMeta(std::string_view name, std::string_view value) {
  rocksdb::WriteOptions wo;
  wo.sync = true;
  rocksdb::Status s = db_->Put(wo, cfs_[kMeta], rocksdb::Slice(name.data(), name.size()),
                               rocksdb::Slice(value.data(), value.size()));
  if (!s.ok()) return Status::Error(std::string(name) + ": " + s.ToString());
  return Status::Ok();
}

}  // namespace ledger
