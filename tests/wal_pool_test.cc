// The zero-filled WAL files (engine/wal_pool.h): RocksDB's WALs are written
// over them, they are kept across restarts, and a log written over one (and
// past its end) reads back whole. The kill -9 case is in crash_test.cc.
#include "engine/wal_pool.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "engine/ledger.h"
#include "tests/test_support.h"

namespace ledger::testing {
namespace {

namespace fs = std::filesystem;

constexpr uint64_t kSpareBytes = 1 << 20;

struct DirFiles {
  std::vector<uint64_t> wal_sizes;    // *.log
  std::vector<uint64_t> spare_sizes;  // ledger-wal-spare-N
  int partial = 0;                    // ledger-wal-spare-N.tmp
};

DirFiles List(const std::string& dir) {
  DirFiles d;
  for (const auto& e : fs::directory_iterator(dir)) {
    std::string name = e.path().filename().string();
    if (WalPool::IsWalFile(name)) d.wal_sizes.push_back(e.file_size());
    if (name.starts_with("ledger-wal-spare-")) {
      if (name.ends_with(".tmp")) {
        ++d.partial;
      } else {
        d.spare_sizes.push_back(e.file_size());
      }
    }
  }
  return d;
}

LedgerOptions PoolOptions() {
  LedgerOptions o;
  o.wal_file_bytes = kSpareBytes;
  return o;
}

TEST(WalPool, NamesRocksDbWalFilesOnly) {
  EXPECT_TRUE(WalPool::IsWalFile("/data/000012.log"));
  EXPECT_TRUE(WalPool::IsWalFile("7.log"));
  EXPECT_FALSE(WalPool::IsWalFile("/data/LOG"));
  EXPECT_FALSE(WalPool::IsWalFile("/data/LOG.old.1700000000"));
  EXPECT_FALSE(WalPool::IsWalFile("/data/MANIFEST-000005"));
  EXPECT_FALSE(WalPool::IsWalFile("/data/000013.sst"));
  EXPECT_FALSE(WalPool::IsWalFile("/data/.log"));
  EXPECT_FALSE(WalPool::IsWalFile("/data/x12.log"));
}

TEST(WalPool, TheFirstWalIsWrittenOverASpareAndTheSparesAreRefilled) {
  TempDir dir;
  std::unique_ptr<Ledger> ledger = OpenLedger(dir.path(), PoolOptions());
  WalPool* pool = ledger->store()->wal_pool();
  ASSERT_NE(pool, nullptr);
  WalPool::Counts c = pool->counts();
  EXPECT_EQ(c.spare, 1u);  // the WAL RocksDB created at open
  EXPECT_EQ(c.nothing, 0u);
  // The open WAL is the spare renamed: as long as the spare, ending in zeros.
  DirFiles d = List(dir.path());
  ASSERT_EQ(d.wal_sizes.size(), 1u);
  EXPECT_EQ(d.wal_sizes[0], kSpareBytes);
  pool->WaitFull();
  d = List(dir.path());
  EXPECT_EQ(d.spare_sizes, (std::vector<uint64_t>{kSpareBytes, kSpareBytes}));
  EXPECT_EQ(d.partial, 0);
  ASSERT_TRUE(ledger->Execute(Grant("u", 1000)).ok());
  ASSERT_TRUE(ledger->Execute(Usage("u", 7)).ok());
  EXPECT_EQ(ledger->PeekBalance("u").balance, 993);
}

TEST(WalPool, ALogWrittenOverSparesAndPastThemReadsBackWhole) {
  // ~5 MB of events: the WAL outgrows its 1 MiB spare, and the ledger is
  // closed and reopened between batches so several WALs take spares.
  TempDir dir;
  uint64_t hash = 0;
  for (int round = 0; round < 3; ++round) {
    std::unique_ptr<Ledger> ledger = OpenLedger(dir.path(), PoolOptions());
    if (round == 0) {
      ASSERT_TRUE(ledger->Execute(Grant("u", 1000000)).ok());
    } else {
      EXPECT_EQ(ledger->Stats().state_hash, hash) << "round " << round;
    }
    for (int b = 0; b < 8; ++b) {
      for (const Outcome& o : ledger->ExecuteBatch(PaddedUsages("u", 500, 400))) {
        ASSERT_TRUE(o.ok());
      }
    }
    hash = ledger->Stats().state_hash;
    EXPECT_EQ(ledger->PeekBalance("u").balance, 1000000 - 4000 * (round + 1));
    ledger->store()->wal_pool()->WaitFull();
  }
  std::unique_ptr<Ledger> ledger = OpenLedger(dir.path(), PoolOptions());
  EXPECT_EQ(ledger->Stats().state_hash, hash);
  EXPECT_EQ(ledger->Stats().last_seq, 12001u);
  EXPECT_EQ(ledger->PeekBalance("u").balance, 1000000 - 12000);
  // Spares left by the last run were used: nothing was written at open.
  EXPECT_EQ(ledger->store()->wal_pool()->counts().spare, 1u);
  EXPECT_EQ(ledger->store()->wal_pool()->counts().nothing, 0u);
}

TEST(WalPool, PartialAndMisSizedSparesAreRemovedAtOpen) {
  TempDir dir;
  fs::create_directories(dir.path());
  std::ofstream(dir.Sub("ledger-wal-spare-3.tmp")) << "half";
  std::ofstream(dir.Sub("ledger-wal-spare-4")) << "wrong size";
  std::ofstream(dir.Sub("unrelated-file")) << "kept";
  std::unique_ptr<Ledger> ledger = OpenLedger(dir.path(), PoolOptions());
  ledger->store()->wal_pool()->WaitFull();
  EXPECT_FALSE(fs::exists(dir.Sub("ledger-wal-spare-3.tmp")));
  EXPECT_FALSE(fs::exists(dir.Sub("ledger-wal-spare-4")));
  EXPECT_TRUE(fs::exists(dir.Sub("unrelated-file")));
  DirFiles d = List(dir.path());
  EXPECT_EQ(d.spare_sizes, (std::vector<uint64_t>{kSpareBytes, kSpareBytes}));
  EXPECT_EQ(ledger->store()->wal_pool()->counts().spare, 1u);
}

TEST(WalPool, ASecondPoolOnTheSameDirectoryLeavesTheFirstOnesFilesAlone) {
  TempDir dir;
  std::unique_ptr<Ledger> ledger = OpenLedger(dir.path(), PoolOptions());
  ledger->store()->wal_pool()->WaitFull();
  DirFiles before = List(dir.path());
  {
    WalPool other(rocksdb::FileSystem::Default(), dir.path(), 2 * kSpareBytes, 2);
    other.WaitFull();  // returns at once: it does not hold the lock
  }
  DirFiles after = List(dir.path());
  EXPECT_EQ(after.spare_sizes, before.spare_sizes);  // not removed for their size
  EXPECT_EQ(after.partial, 0);
  ASSERT_TRUE(ledger->Execute(Grant("u", 5)).ok());
}

TEST(WalPool, SparesAreFilledInTheBackgroundNoFasterThanSixteenMegabytesASecond) {
  // No WAL is used up, so the second spare is filled at the slowest pace:
  // 8 MB at 16 MB/s is half a second at least, however fast the disk. (The
  // first spare is written before the constructor returns, at once.)
  TempDir dir;
  auto start = std::chrono::steady_clock::now();
  WalPool pool(rocksdb::FileSystem::Default(), dir.path(), 8 << 20, 2);
  auto first = std::chrono::steady_clock::now();
  pool.WaitFull();
  auto full = std::chrono::steady_clock::now();
  EXPECT_GE(full - first, std::chrono::milliseconds(450))
      << "the background fill was not paced (the first took "
      << std::chrono::duration<double>(first - start).count() << " s)";
  EXPECT_EQ(List(dir.path()).spare_sizes, (std::vector<uint64_t>{8 << 20, 8 << 20}));
}

TEST(WalPool, OffByDefaultInTheLibrary) {
  TempDir dir;
  std::unique_ptr<Ledger> ledger = OpenLedger(dir.path());
  EXPECT_EQ(ledger->store()->wal_pool(), nullptr);
  EXPECT_TRUE(List(dir.path()).spare_sizes.empty());
}

}  // namespace
}  // namespace ledger::testing
