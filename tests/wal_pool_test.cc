// The zero-filled WAL files (engine/wal_pool.h): RocksDB's WALs are written
// over them, they are kept across restarts, and a log written over one (and
// past its end) reads back whole. The kill -9 case is in crash_test.cc.
#include "engine/wal_pool.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string_view>
#include <thread>

#include "engine/ledger.h"
#include "tests/test_support.h"

namespace ledger::testing {
namespace {

namespace fs = std::filesystem;

constexpr uint64_t kSpareBytes = 1 << 20;

struct DirFiles {
  std::vector<uint64_t> wal_sizes;    // *.log
  std::vector<uint64_t> spare_sizes;  // ledger-wal-spare-N
  std::vector<std::string> spares;    // their paths
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
        d.spares.push_back(e.path().string());
      }
    }
  }
  return d;
}

// Whether the file holds only zeros.
bool AllZeros(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string piece(1 << 16, '\0');
  while (in.read(piece.data(), static_cast<std::streamsize>(piece.size())) || in.gcount() > 0) {
    std::string_view got(piece.data(), static_cast<size_t>(in.gcount()));
    if (got.find_first_not_of('\0') != std::string_view::npos) return false;
  }
  return true;
}

// The ready spares in `dir` are each `bytes` long and all zeros.
void ExpectSparesOfZeros(const std::string& dir, uint64_t bytes) {
  DirFiles d = List(dir);
  EXPECT_FALSE(d.spares.empty());
  for (size_t i = 0; i < d.spares.size(); ++i) {
    EXPECT_EQ(d.spare_sizes[i], bytes) << d.spares[i];
    EXPECT_TRUE(AllZeros(d.spares[i])) << d.spares[i] << " holds more than zeros";
  }
}

// After a flush: RocksDB deletes the WAL files it no longer needs in the
// background, maybe after Flush returns. Waits (up to 10 s) until `recycled`
// spares were made from them, then until the filler has nothing left to do.
void WaitRecycled(WalPool* pool, uint64_t recycled) {
  for (int i = 0; i < 1000 && pool->counts().recycled < recycled; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  pool->WaitFull();
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

TEST(WalPool, DeletedWalFilesBecomeSparesOfZeros) {
  // Each flush starts a new WAL file and lets RocksDB delete the one before:
  // it comes back as a spare, zeroed where the log's records were.
  TempDir dir;
  std::unique_ptr<Ledger> ledger = OpenLedger(dir.path(), PoolOptions());
  WalPool* pool = ledger->store()->wal_pool();
  pool->WaitFull();
  ASSERT_EQ(pool->counts().filled, 3u);  // the WAL RocksDB opened with, and two ready
  ASSERT_TRUE(ledger->Execute(Grant("u", 1000000)).ok());
  for (int round = 0; round < 4; ++round) {
    // ~300 KB of records in a 1 MiB spare; the last round outgrows it.
    int count = round == 3 ? 3000 : 600;
    for (const Outcome& o : ledger->ExecuteBatch(PaddedUsages("u", count, 400))) {
      ASSERT_TRUE(o.ok());
    }
    ASSERT_TRUE(ledger->store()->Flush().ok());
    WaitRecycled(pool, round + 1);
  }
  // Every flush's new WAL took a spare, and the one it followed came back:
  // no new spare was made after the first three.
  WalPool::Counts c = pool->counts();
  EXPECT_EQ(c.spare, 5u);
  EXPECT_EQ(c.nothing, 0u);
  EXPECT_EQ(c.recycled, 4u);
  EXPECT_EQ(c.filled, 3u);
  ExpectSparesOfZeros(dir.path(), kSpareBytes);
  uint64_t hash = ledger->Stats().state_hash;
  ledger.reset();
  ledger = OpenLedger(dir.path(), PoolOptions());
  EXPECT_EQ(ledger->Stats().state_hash, hash);
  EXPECT_EQ(ledger->PeekBalance("u").balance, 1000000 - 4800);
}

// Where the records of a WAL file (RocksDB's log format: 32 KiB blocks of
// records with a 7-byte header: checksum, length, type) end: at the first
// header of zeros.
size_t WalRecordsEnd(std::string_view bytes) {
  constexpr size_t kBlock = 32768, kHeader = 7;
  size_t at = 0;
  while (at + kHeader <= bytes.size()) {
    size_t left = kBlock - at % kBlock;
    if (left < kHeader) {  // a block's trailer
      at += left;
      continue;
    }
    std::string_view header = bytes.substr(at, kHeader);
    if (header.find_first_not_of('\0') == std::string_view::npos) break;
    size_t length = static_cast<uint8_t>(header[4]) | static_cast<uint8_t>(header[5]) << 8;
    at += kHeader + length;
  }
  return at;
}

TEST(WalPool, ACrashInsideAWalOverARecycledSpareRecoversOnlyItsOwnRecords) {
  // Three flushes: the third WAL file is the first one made a spare again,
  // with ~300 KB of older records zeroed. A short log written over it, and
  // the directory as a crash would leave it (copied while open; every write
  // was synced), must read back as that log, and nothing of the older one.
  TempDir dir;
  std::unique_ptr<Ledger> ledger = OpenLedger(dir.path(), PoolOptions());
  WalPool* pool = ledger->store()->wal_pool();
  pool->WaitFull();
  ASSERT_TRUE(ledger->Execute(Grant("u", 1000000)).ok());
  for (int round = 0; round < 3; ++round) {
    for (const Outcome& o : ledger->ExecuteBatch(PaddedUsages("u", 600, 400))) {
      ASSERT_TRUE(o.ok());
    }
    ASSERT_TRUE(ledger->store()->Flush().ok());
    WaitRecycled(pool, round + 1);
  }
  ASSERT_EQ(pool->counts().recycled, 3u);
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(ledger->Execute(Usage("u", 2)).ok());
  // The WAL file in use: its records, then nothing but zeros.
  std::string wal;
  for (const auto& e : fs::directory_iterator(dir.path())) {
    if (WalPool::IsWalFile(e.path().string()) && e.path().string() > wal) wal = e.path().string();
  }
  ASSERT_FALSE(wal.empty());
  std::ifstream in(wal, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_EQ(bytes.size(), kSpareBytes);
  size_t end = WalRecordsEnd(bytes);
  EXPECT_GT(end, 100u * 100);  // 100 commands' records
  EXPECT_EQ(std::string_view(bytes).substr(end).find_first_not_of('\0'), std::string_view::npos)
      << "bytes other than zeros after the WAL's records, at " << end;
  const LedgerStats before = ledger->Stats();
  TempDir crashed;
  fs::copy(dir.path(), crashed.path(), fs::copy_options::recursive);
  std::unique_ptr<Ledger> recovered = OpenLedger(crashed.path(), PoolOptions());
  EXPECT_EQ(recovered->Stats().last_seq, before.last_seq);
  EXPECT_EQ(recovered->Stats().state_hash, before.state_hash);
  EXPECT_EQ(recovered->PeekBalance("u").balance, 1000000 - 1800 - 200);
}

// A pool of its own in a new directory, its spares ready, driven through its
// file system directly, as RocksDB does.
struct LonePool {
  LonePool() { pool.WaitFull(); }
  // WAL file `name` in the directory, created through the pool.
  std::unique_ptr<rocksdb::FSWritableFile> NewWal(const std::string& name) {
    std::unique_ptr<rocksdb::FSWritableFile> file;
    EXPECT_TRUE(pool.NewWritableFile(dir.Sub(name), rocksdb::FileOptions(), &file, nullptr).ok());
    return file;
  }
  static const std::string& Created(const TempDir& d) {
    fs::create_directories(d.path());
    return d.path();
  }

  TempDir dir;
  WalPool pool{rocksdb::FileSystem::Default(), Created(dir), kSpareBytes, 2};
};

TEST(WalPool, BytesWrittenPastWhatThePoolSawAreZeroedToo) {
  LonePool lone;
  WalPool& pool = lone.pool;
  const std::string wal = lone.dir.Sub("000007.log");
  std::unique_ptr<rocksdb::FSWritableFile> file = lone.NewWal("000007.log");
  ASSERT_EQ(pool.counts().spare, 1u);
  ASSERT_TRUE(file->Append(std::string(100000, '\xab'), rocksdb::IOOptions(), nullptr).ok());
  ASSERT_TRUE(file->Close(rocksdb::IOOptions(), nullptr).ok());
  file.reset();
  EXPECT_EQ(fs::file_size(wal), kSpareBytes);  // not trimmed: the spare's pages stay
  {
    // Records the pool did not see, right after the ones it did.
    std::fstream out(wal, std::ios::binary | std::ios::in | std::ios::out);
    out.seekp(100000);
    out << std::string(50000, '\xcd');
  }
  ASSERT_TRUE(pool.DeleteFile(wal, rocksdb::IOOptions(), nullptr).ok());
  EXPECT_FALSE(fs::exists(wal));
  pool.WaitFull();
  EXPECT_EQ(pool.counts().recycled, 1u);
  ExpectSparesOfZeros(lone.dir.path(), kSpareBytes);
}

TEST(WalPool, AWalDeletedBeforeItIsClosedBecomesASpareOnceClosed) {
  LonePool lone;
  WalPool& pool = lone.pool;
  const std::string wal = lone.dir.Sub("000009.log");
  std::unique_ptr<rocksdb::FSWritableFile> file = lone.NewWal("000009.log");
  ASSERT_TRUE(file->Append(std::string(70000, '\x5a'), rocksdb::IOOptions(), nullptr).ok());
  ASSERT_TRUE(pool.DeleteFile(wal, rocksdb::IOOptions(), nullptr).ok());
  EXPECT_FALSE(fs::exists(wal));
  pool.WaitFull();
  EXPECT_EQ(pool.counts().recycled, 0u);  // still open: not zeroed under its writer
  ASSERT_TRUE(file->Append(std::string(30000, '\x5b'), rocksdb::IOOptions(), nullptr).ok());
  file.reset();  // closed by its destructor
  pool.WaitFull();
  EXPECT_EQ(pool.counts().recycled, 1u);
  ExpectSparesOfZeros(lone.dir.path(), kSpareBytes);
  // A WAL the pool did not create is deleted, not kept.
  const std::string other = lone.dir.Sub("000011.log");
  std::ofstream(other) << "records";
  ASSERT_TRUE(pool.DeleteFile(other, rocksdb::IOOptions(), nullptr).ok());
  EXPECT_FALSE(fs::exists(other));
  pool.WaitFull();
  EXPECT_EQ(pool.counts().recycled, 1u);
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
