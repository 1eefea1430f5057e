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
// of the records in it, so the log format on disk is unchanged. When no
// spare is ready RocksDB gets a new empty file, as without the pool.
//
// A WAL file is made a spare again when RocksDB deletes it: renamed to a
// partial spare, what RocksDB wrote in it overwritten with zeros (the pool
// tracks how far it wrote), zeros appended up to `file_bytes` if it is
// shorter, synced, and named a spare. Its pages are still in the page cache,
// so the zeros are a copy into them. A new file's pages are new memory, and
// on this machine (a VM whose host takes back the memory the guest frees)
// first touching them costs ~5 ms of kernel CPU per MB: 64 MB of zeros took
// 0.35-0.37 s of system time into a new file and 0.01 s over a cached one.
// RocksDB trims a WAL file it preallocated when it closes it; over a spare
// it is told not to preallocate, so the spare's pages stay, and past what
// RocksDB wrote they are still zeros. A new spare is made only when none is
// ready or when the ready ones and the WAL files that will come back (all
// but the one RocksDB writes) are fewer than `spares`; at most 3 x `spares`
// are ready or being made, and a deleted WAL beyond that is deleted.
#pragma once

#include <rocksdb/file_system.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
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
  rocksdb::IOStatus ReopenWritableFile(const std::string& fname,
                                       const rocksdb::FileOptions& options,
                                       std::unique_ptr<rocksdb::FSWritableFile>* result,
                                       rocksdb::IODebugContext* dbg) override;
  // A WAL file created here becomes a spare again, unless enough are ready
  // or on their way; anything else is deleted.
  rocksdb::IOStatus DeleteFile(const std::string& fname, const rocksdb::IOOptions& options,
                               rocksdb::IODebugContext* dbg) override;

  // WAL files created: written over a spare, or over nothing (new and
  // empty: no spare was ready). Spares made: from nothing (every byte
  // written) or from a deleted WAL (its written part zeroed).
  struct Counts {
    uint64_t spare = 0;
    uint64_t nothing = 0;
    uint64_t filled = 0;
    uint64_t recycled = 0;
  };
  Counts counts() const;
  // Blocks until the background thread has nothing left to do (tests).
  void WaitFull();

  static bool IsWalFile(const std::string& fname);

  // A WAL file created here, while RocksDB has it (shared with its writer).
  struct LiveWal;

 private:
  class TrackedFile;
  // A deleted WAL renamed to a partial spare: zeros are due over [0, end).
  struct Recycled {
    uint64_t number = 0;  // the spare it becomes; its ".tmp" name now
    uint64_t end = 0;
  };

  // Writes spare `number`, from nothing or over `from`; its path, or nothing
  // if stopped or failed (the partial file is then removed).
  std::optional<std::string> FillOne(uint64_t number, bool paced, const Recycled* from = nullptr);
  // The zeros of FillOne over [from, to), in paced pieces.
  bool WriteZeros(int fd, uint64_t from, uint64_t to, bool paced);
  // `live`'s writer closed it (TrackedFile).
  void Closed(LiveWal& live);
  // Whether a new spare should be made (none ready, or too few ready and on
  // their way back); mu_ held.
  bool NewSpareDue() const;
  std::string SparePath(uint64_t number) const;
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
  std::vector<Recycled> recycled_;  // deleted WALs, waiting for their zeros
  // The WAL files created here that RocksDB has not deleted, by number.
  std::map<uint64_t, std::shared_ptr<LiveWal>> live_;
  bool filling_ = false;  // the background thread is making a spare
  size_t deferred_ = 0;   // WALs deleted before their writers closed them
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
