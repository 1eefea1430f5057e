// Write-ahead log files that are written before RocksDB needs them.
//
// Every group commit appends to RocksDB's WAL and fdatasyncs it. When the
// append makes the file longer, ext4 must also allocate blocks and write the
// inode with the new size before the fdatasync returns: three device writes
// where an overwrite needs two. On this machine's disk, 16 KB written and
// fdatasync'd cost 217 us appending against 113 us over blocks already
// written (3,000 of each in a loop). PostgreSQL avoids the same cost by
// zero-filling each WAL segment before it is used, and pg_test_fsync, whose
// rate the benchmark prints, measures overwrites; this is the same idea.
//
// WalPool wraps RocksDB's file system. A background thread keeps `spares`
// files of `file_bytes` zeros, written and synced, in the data directory
// (named ledger-wal-spare-N, which RocksDB ignores), at most at twice the
// rate WAL files are used up at (16 MB/s at least, and never more than about
// half of the disk), so the zeros in flight add little to each group
// commit's fdatasync. When RocksDB creates a
// WAL file it gets a spare renamed to the WAL's name and is written from
// offset 0 over the zeros. RocksDB's log reader takes a zero block for the end
// of the records in it, and trims the file to its records when it closes it,
// so the log format on disk is unchanged. When no spare is ready RocksDB gets
// a new empty file, as without the pool.
#pragma once

#include <rocksdb/file_system.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace ledger {

class WalPool : public rocksdb::FileSystemWrapper {
 public:
  // Spares already in `dir` from an earlier run are kept if complete. When
  // none is, one is written before the constructor returns, so the WAL
  // RocksDB creates at open already gets one.
  WalPool(std::shared_ptr<rocksdb::FileSystem> target, std::string dir, uint64_t file_bytes,
          int spares);
  ~WalPool() override;
  WalPool(const WalPool&) = delete;
  WalPool& operator=(const WalPool&) = delete;

  const char* Name() const override { return "LedgerWalPool"; }

  rocksdb::IOStatus NewWritableFile(const std::string& fname, const rocksdb::FileOptions& options,
                                    std::unique_ptr<rocksdb::FSWritableFile>* result,
                                    rocksdb::IODebugContext* dbg) override;

  // WAL files created: written over a spare, or over nothing (new and
  // empty: no spare was ready).
  struct Counts {
    uint64_t spare = 0;
    uint64_t nothing = 0;
  };
  Counts counts() const;
  // Blocks until the background thread has `spares` ready (tests).
  void WaitFull();

  static bool IsWalFile(const std::string& fname);

 private:
  // Writes spare `number`; its path, or nothing if stopped or failed.
  std::optional<std::string> FillOne(uint64_t number, bool paced);
  bool stopping() const;
  // The most a background fill may write per second; 0: no bound but the
  // pauses between pieces.
  double FillBytesPerSecond() const;
  void Run();

  const std::string dir_;
  const uint64_t file_bytes_;
  const size_t spares_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> ready_;  // paths, oldest first
  uint64_t next_number_ = 0;
  Counts counts_;
  bool stop_ = false;
  bool failed_ = false;  // the last fill failed; retried when a spare is taken
  // When the last WAL file was created, and the rate WAL files were used up
  // at between the last two (0 until there were two).
  std::optional<std::chrono::steady_clock::time_point> last_wal_created_;
  double used_bytes_per_second_ = 0;
  int lock_fd_ = -1;  // held (flock) while this pool owns the spares; else -1
  std::thread filler_;
};

}  // namespace ledger
