// The ledger's memtables (engine/memtable_rep.h): the skiplist, and the hash
// table of the point-lookup families (with few buckets, so chains are long,
// and with as many as ledgerd's), each exercised through a real RocksDB on
// disk against a std::map model: every read path RocksDB
// takes through a memtable (point reads, both iteration directions, seeks,
// snapshots, the flush) over inserts in the orders the ledger makes (the log
// in increasing order, sorted groups of random index keys) and in the
// orders it does not (random, descending, overwrites, deletes).
#include "engine/memtable_rep.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace ledger {
namespace {

using FactoryMaker = std::shared_ptr<rocksdb::MemTableRepFactory> (*)();

class Db {
 public:
  explicit Db(FactoryMaker factory) : factory_(factory) {
    char tmpl[] = "/tmp/ledger-memtable-XXXXXX";
    dir_ = mkdtemp(tmpl);
    Open();
  }
  ~Db() {
    db_.reset();
    std::filesystem::remove_all(dir_);
  }
  void Open() {
    rocksdb::Options o;
    o.create_if_missing = true;
    o.allow_concurrent_memtable_write = false;
    o.memtable_factory = factory_();
    o.write_buffer_size = 256 << 20;  // everything stays in the memtable until Flush
    rocksdb::DB* raw = nullptr;
    rocksdb::Status s = rocksdb::DB::Open(o, dir_, &raw);
    ASSERT_TRUE(s.ok()) << s.ToString();
    db_.reset(raw);
  }
  void Reopen() {
    db_.reset();
    Open();
  }
  rocksdb::DB* operator->() { return db_.get(); }
  rocksdb::DB* get() { return db_.get(); }

 private:
  FactoryMaker factory_;
  std::string dir_;
  std::unique_ptr<rocksdb::DB> db_;
};

struct Rep {
  const char* name;
  FactoryMaker factory;
};

class LedgerMemTable : public testing::TestWithParam<Rep> {};

std::shared_ptr<rocksdb::MemTableRepFactory> HashFewBuckets() {
  return NewLedgerPointMemTableFactory(64);
}
std::shared_ptr<rocksdb::MemTableRepFactory> HashAsLedgerd() {
  return NewLedgerPointMemTableFactory(std::size_t{1} << 18);
}

INSTANTIATE_TEST_SUITE_P(Reps, LedgerMemTable,
                         testing::Values(Rep{"SkipList", &NewLedgerMemTableFactory},
                                         Rep{"HashFewBuckets", &HashFewBuckets},
                                         Rep{"HashAsLedgerd", &HashAsLedgerd}),
                         [](const testing::TestParamInfo<Rep>& info) {
                           return std::string(info.param.name);
                         });

std::string Key(uint64_t n) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "k%09llu", static_cast<unsigned long long>(n));
  return buf;
}

// The iterator is at `want`, or past the end when it is null.
void ExpectAt(rocksdb::Iterator* it, const std::string* want, const std::string& probe) {
  if (want == nullptr) {
    EXPECT_FALSE(it->Valid()) << probe;
  } else {
    ASSERT_TRUE(it->Valid()) << probe;
    EXPECT_EQ(it->key().ToString(), *want) << probe;
  }
}

// Everything RocksDB can read back agrees with the model.
void ExpectSameAs(rocksdb::DB* db, const std::map<std::string, std::string>& model,
                  const std::vector<std::string>& probes) {
  // Forward.
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
  auto m = model.begin();
  for (it->SeekToFirst(); it->Valid(); it->Next(), ++m) {
    ASSERT_NE(m, model.end()) << "extra key " << it->key().ToString();
    ASSERT_EQ(it->key().ToString(), m->first);
    ASSERT_EQ(it->value().ToString(), m->second);
  }
  ASSERT_TRUE(it->status().ok());
  ASSERT_EQ(m, model.end()) << "missing key " << m->first;
  // Backward.
  auto r = model.rbegin();
  for (it->SeekToLast(); it->Valid(); it->Prev(), ++r) {
    ASSERT_NE(r, model.rend());
    ASSERT_EQ(it->key().ToString(), r->first);
  }
  ASSERT_EQ(r, model.rend());
  for (const std::string& probe : probes) {
    // Point reads.
    std::string value;
    rocksdb::Status s = db->Get(rocksdb::ReadOptions(), probe, &value);
    auto found = model.find(probe);
    if (found == model.end()) {
      EXPECT_TRUE(s.IsNotFound()) << probe << ": " << s.ToString();
    } else {
      ASSERT_TRUE(s.ok()) << probe << ": " << s.ToString();
      EXPECT_EQ(value, found->second) << probe;
    }
    // Seek: the first key not before the probe.
    it->Seek(probe);
    auto lower = model.lower_bound(probe);
    ExpectAt(it.get(), lower == model.end() ? nullptr : &lower->first, probe);
    // SeekForPrev: the last key not after the probe.
    it->SeekForPrev(probe);
    auto upper = model.upper_bound(probe);
    ExpectAt(it.get(), upper == model.begin() ? nullptr : &std::prev(upper)->first, probe);
  }
}

TEST_P(LedgerMemTable, EveryReadAgreesWithAModelOverEveryInsertOrder) {
  if (!kLedgerMemTableAvailable) GTEST_SKIP() << "RocksDB's own memtable in this build";
  Db db(GetParam().factory);
  std::map<std::string, std::string> model;
  std::mt19937_64 rng(7);
  rocksdb::WriteOptions wo;
  wo.disableWAL = true;
  auto put = [&](rocksdb::WriteBatch* b, const std::string& k, const std::string& v) {
    ASSERT_TRUE(b->Put(k, v).ok());
    model[k] = v;
  };
  // The log: increasing keys, one batch per group.
  uint64_t next = 1000;
  for (int group = 0; group < 40; ++group) {
    rocksdb::WriteBatch b;
    for (int i = 0; i < 50; ++i, ++next) put(&b, Key(next * 2), "log" + std::to_string(next));
    ASSERT_TRUE(db->Write(wo, &b).ok());
  }
  // Index groups: random keys, sorted within each group (and interleaved
  // with the log's range).
  for (int group = 0; group < 40; ++group) {
    std::vector<std::string> keys;
    for (int i = 0; i < 30; ++i) keys.push_back(Key(rng() % 6000));
    std::sort(keys.begin(), keys.end());
    rocksdb::WriteBatch b;
    for (const std::string& k : keys) put(&b, k, "idx" + std::to_string(group));
    ASSERT_TRUE(db->Write(wo, &b).ok());
  }
  // Descending, then random one by one, overwrites among them.
  for (uint64_t n = 9000; n > 8000; n -= 3) {
    rocksdb::WriteBatch b;
    put(&b, Key(n), "down");
    ASSERT_TRUE(db->Write(wo, &b).ok());
  }
  for (int i = 0; i < 2000; ++i) {
    rocksdb::WriteBatch b;
    put(&b, Key(rng() % 10000), "rand" + std::to_string(i));
    ASSERT_TRUE(db->Write(wo, &b).ok());
  }
  // Deletes: a tombstone is a newer entry of the same user key.
  for (int i = 0; i < 300; ++i) {
    std::string k = Key(rng() % 10000);
    ASSERT_TRUE(db->Delete(wo, k).ok());
    model.erase(k);
  }
  // Keys of other lengths around the fixed-width ones.
  {
    rocksdb::WriteBatch b;
    put(&b, "", "empty");
    put(&b, "k", "short");
    put(&b, "k00000500", "prefix-equal");
    put(&b, "k000005000", "longer");
    put(&b, std::string(200, 'z'), "long key (two-byte length)");
    ASSERT_TRUE(db->Write(wo, &b).ok());
  }
  std::vector<std::string> probes = {"",
                                     "a",
                                     "k",
                                     "k0",
                                     "k00000500",
                                     "k000005000",
                                     "zz",
                                     std::string(200, 'z'),
                                     std::string(201, 'z')};
  for (int i = 0; i < 400; ++i) probes.push_back(Key(rng() % 11000));
  ExpectSameAs(db.get(), model, probes);
  // The flush reads the memtable through an arena iterator; then from disk.
  ASSERT_TRUE(db->Flush(rocksdb::FlushOptions()).ok());
  ExpectSameAs(db.get(), model, probes);
  db.Reopen();
  ExpectSameAs(db.get(), model, probes);
}

TEST_P(LedgerMemTable, ASnapshotReadsTheVersionsBeforeIt) {
  if (!kLedgerMemTableAvailable) GTEST_SKIP() << "RocksDB's own memtable in this build";
  Db db(GetParam().factory);
  rocksdb::WriteOptions wo;
  ASSERT_TRUE(db->Put(wo, "a", "1").ok());
  ASSERT_TRUE(db->Put(wo, "b", "1").ok());
  const rocksdb::Snapshot* snap = db->GetSnapshot();
  ASSERT_TRUE(db->Put(wo, "a", "2").ok());
  ASSERT_TRUE(db->Delete(wo, "b").ok());
  ASSERT_TRUE(db->Put(wo, "a", "3").ok());
  rocksdb::ReadOptions at_snap;
  at_snap.snapshot = snap;
  std::string v;
  ASSERT_TRUE(db->Get(at_snap, "a", &v).ok());
  EXPECT_EQ(v, "1");
  ASSERT_TRUE(db->Get(at_snap, "b", &v).ok());
  EXPECT_EQ(v, "1");
  ASSERT_TRUE(db->Get(rocksdb::ReadOptions(), "a", &v).ok());
  EXPECT_EQ(v, "3");
  EXPECT_TRUE(db->Get(rocksdb::ReadOptions(), "b", &v).IsNotFound());
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(at_snap));
  std::string seen;
  for (it->SeekToFirst(); it->Valid(); it->Next())
    seen += it->key().ToString() + "=" + it->value().ToString() + " ";
  EXPECT_EQ(seen, "a=1 b=1 ");
  db->ReleaseSnapshot(snap);
}

// One thread writes in the log's order while others read: every key a
// reader knows was written is found, and iteration is always in order.
TEST_P(LedgerMemTable, ReadersSeeEveryInsertWhileOneThreadWrites) {
  if (!kLedgerMemTableAvailable) GTEST_SKIP() << "RocksDB's own memtable in this build";
  Db db(GetParam().factory);
  constexpr uint64_t kKeys = 20000;
  std::atomic<uint64_t> written{0};
  std::atomic<bool> failed{false};
  std::thread writer([&] {
    rocksdb::WriteOptions wo;
    wo.disableWAL = true;
    std::mt19937_64 rng(11);
    for (uint64_t n = 1; n <= kKeys; ++n) {
      rocksdb::WriteBatch b;
      b.Put(Key(n * 2), "v");
      b.Put("i" + Key(rng() % 100000), "x");  // a random index-like key beside it
      if (!db->Write(wo, &b).ok()) failed = true;
      written.store(n, std::memory_order_release);
    }
  });
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; ++t) {
    readers.emplace_back([&, t] {
      std::mt19937_64 rng(100 + t);
      while (written.load(std::memory_order_acquire) < kKeys && !failed) {
        uint64_t upto = written.load(std::memory_order_acquire);
        if (upto == 0) continue;
        std::string v;
        uint64_t n = 1 + rng() % upto;
        if (!db->Get(rocksdb::ReadOptions(), Key(n * 2), &v).ok()) failed = true;
        if (db->Get(rocksdb::ReadOptions(), Key(n * 2 + 1), &v).ok()) failed = true;
        std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
        std::string prev;
        uint64_t count = 0;
        for (it->Seek(Key(n * 2)); it->Valid() && count < 200; it->Next(), ++count) {
          std::string k = it->key().ToString();
          if (!prev.empty() && !(prev < k)) failed = true;
          prev = std::move(k);
        }
      }
    });
  }
  writer.join();
  for (auto& r : readers) r.join();
  EXPECT_FALSE(failed);
  uint64_t found = 0;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(Key(0)); it->Valid() && it->key().starts_with("k"); it->Next()) ++found;
  EXPECT_EQ(found, kKeys);
}

}  // namespace
}  // namespace ledger
