#include "engine/wal_pool.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>

#include "engine/text.h"

namespace ledger {

namespace {

constexpr std::string_view kSparePrefix = "ledger-wal-spare-";
constexpr std::string_view kTmpSuffix = ".tmp";
// Zeros go to disk in pieces this large, each waited for (sync_file_range),
// then a pause at least as long as the piece took: the filler takes at most
// about half of the disk from the group commits' fdatasyncs. And no faster
// than FillBytesPerSecond: every group commit's fdatasync ends in a cache
// flush of the whole virtual disk, which also writes the zeros in flight.
// At half the disk (~150 MB/s here) a spare filled after a restart made the
// p99 of one client's commands 0.75-1.08 ms over the next 4 s, against
// 0.27-0.47 ms at 16 MB/s (alternating restarts of the same data).
constexpr size_t kChunkBytes = 256 << 10;
// The slowest fill: a 64 MB spare in four seconds. Faster when WAL files are
// used up faster (twice their rate), up to half the disk when none is left.
constexpr double kFillBytesPerSecondMin = 16 << 20;
// Trivially destructible on purpose: a process that calls exit() while the
// filler runs (ledgerd refusing its flags after the open) destroys static
// objects under it; this buffer has nothing to destroy.
constexpr char kZeros[kChunkBytes] = {};

bool WriteAll(int fd, const char* data, size_t n, off_t offset) {
  while (n > 0) {
    ssize_t w = ::pwrite(fd, data, n, offset);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    data += w;
    n -= static_cast<size_t>(w);
    offset += w;
  }
  return true;
}

std::optional<uint64_t> WalNumber(const std::string& fname) {
  // RocksDB names its WAL files <number>.log.
  constexpr std::string_view kSuffix = ".log";
  std::string_view base = fname;
  base = base.substr(base.rfind('/') + 1);  // npos + 1 == 0: no directory
  if (!base.ends_with(kSuffix)) return std::nullopt;
  return ParseDecimal(base.substr(0, base.size() - kSuffix.size()));
}

// Whether the piece of the file at `offset` (as much as kChunkBytes, not past
// `size`) is all zeros; false if it cannot be read.
bool ZerosAt(int fd, uint64_t offset, uint64_t size) {
  static thread_local std::vector<char> buffer(kChunkBytes);
  size_t n = static_cast<size_t>(std::min<uint64_t>(kChunkBytes, size - offset));
  ssize_t r = ::pread(fd, buffer.data(), n, static_cast<off_t>(offset));
  if (r != static_cast<ssize_t>(n)) return false;
  return std::memcmp(buffer.data(), kZeros, n) == 0;
}

}  // namespace

bool WalPool::IsWalFile(const std::string& fname) { return WalNumber(fname).has_value(); }

struct WalPool::LiveWal {
  // The end of the furthest write RocksDB made (counted before each write is
  // made, so a failed one counts too).
  std::atomic<uint64_t> end{0};
  // Guarded by the pool's mutex.
  bool closed = false;
  std::optional<uint64_t> deleted_as;  // deleted while open: the spare number it was given
};

// The writable file RocksDB gets for a WAL: RocksDB's own, and the end of
// what it wrote, for the zeros when the file is made a spare again.
class WalPool::TrackedFile : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  TrackedFile(std::unique_ptr<rocksdb::FSWritableFile> file, WalPool* pool,
              std::shared_ptr<LiveWal> live, bool over_spare)
      : rocksdb::FSWritableFileOwnerWrapper(std::move(file)),
        pool_(pool),
        live_(std::move(live)),
        over_spare_(over_spare) {}
  ~TrackedFile() override {
    if (!closed_) Close(rocksdb::IOOptions(), nullptr).PermitUncheckedError();
  }

  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& options,
                           rocksdb::IODebugContext* dbg) override {
    Appending(data.size());
    return target()->Append(data, options, dbg);
  }
  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& options,
                           const rocksdb::DataVerificationInfo& info,
                           rocksdb::IODebugContext* dbg) override {
    Appending(data.size());
    return target()->Append(data, options, info, dbg);
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data, uint64_t offset,
                                     const rocksdb::IOOptions& options,
                                     rocksdb::IODebugContext* dbg) override {
    Writing(offset, data.size());
    return target()->PositionedAppend(data, offset, options, dbg);
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data, uint64_t offset,
                                     const rocksdb::IOOptions& options,
                                     const rocksdb::DataVerificationInfo& info,
                                     rocksdb::IODebugContext* dbg) override {
    Writing(offset, data.size());
    return target()->PositionedAppend(data, offset, options, info, dbg);
  }
  // Over a spare, nothing is preallocated: a file RocksDB preallocated (even
  // where the blocks are there already) is trimmed to what it wrote when it
  // is closed, which would give back the pages the spare's zeros are in.
  void SetPreallocationBlockSize(size_t size) override {
    if (!over_spare_) target()->SetPreallocationBlockSize(size);
  }
  rocksdb::IOStatus Truncate(uint64_t size, const rocksdb::IOOptions& options,
                             rocksdb::IODebugContext* dbg) override {
    offset_ = size;  // the next Append writes here
    return target()->Truncate(size, options, dbg);
  }
  rocksdb::IOStatus Close(const rocksdb::IOOptions& options,
                          rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s = target()->Close(options, dbg);
    if (!closed_) {
      closed_ = true;
      pool_->Closed(*live_);
    }
    return s;
  }

 private:
  // An Append writes where the last one ended.
  void Appending(size_t n) {
    Writing(offset_, n);
    offset_ += n;
  }
  void Writing(uint64_t offset, size_t n) {
    if (offset + n > live_->end.load(std::memory_order_relaxed)) {
      live_->end.store(offset + n, std::memory_order_release);
    }
  }

  WalPool* pool_;
  std::shared_ptr<LiveWal> live_;
  const bool over_spare_;
  uint64_t offset_ = 0;  // written from offset 0
  bool closed_ = false;
};

WalPool::WalPool(std::shared_ptr<rocksdb::FileSystem> target, std::string dir, uint64_t file_bytes,
                 int spares)
    : rocksdb::FileSystemWrapper(std::move(target)),
      dir_(std::move(dir)),
      file_bytes_(file_bytes),
      spares_(static_cast<size_t>(std::max(spares, 1))) {
  // Another process with this directory open has its own pool here; leave
  // its files alone (its RocksDB lock will refuse this open anyway).
  lock_fd_ = ::open((dir_ + "/ledger-wal-spare.lock").c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
  if (lock_fd_ >= 0 && ::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    ::close(lock_fd_);
    lock_fd_ = -1;
  }
  if (lock_fd_ < 0) return;

  // Spares from an earlier run: keep the complete ones, in order; a partial
  // one (".tmp", or the wrong size after a change of size) is removed.
  std::vector<std::pair<uint64_t, std::string>> found;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir_, ec)) {
    std::string name = entry.path().filename().string();
    if (!name.starts_with(kSparePrefix)) continue;
    std::string_view rest = std::string_view(name).substr(kSparePrefix.size());
    std::optional<uint64_t> number = ParseDecimal(rest);
    std::error_code file_ec;
    if (number && entry.file_size(file_ec) == file_bytes_ && !file_ec) {
      found.emplace_back(*number, entry.path().string());
    } else if (number || rest.ends_with(kTmpSuffix)) {
      std::filesystem::remove(entry.path(), file_ec);
    }
  }
  std::sort(found.begin(), found.end());
  for (auto& [number, path] : found) {
    ready_.push_back(std::move(path));
    next_number_ = number + 1;
  }
  if (ready_.empty()) {
    if (std::optional<std::string> path = FillOne(next_number_++, /*paced=*/false)) {
      ready_.push_back(std::move(*path));
      ++counts_.filled;
    }
  }
  filler_ = std::thread([this] { Run(); });
}

WalPool::~WalPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (filler_.joinable()) filler_.join();
  // Deleted WALs not yet zeroed: what RocksDB deleted goes.
  for (const Recycled& r : recycled_)
    ::unlink((SparePath(r.number) + std::string(kTmpSuffix)).c_str());
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

std::string WalPool::SparePath(uint64_t number) const {
  return dir_ + "/" + std::string(kSparePrefix) + std::to_string(number);
}

bool WalPool::WriteZeros(int fd, uint64_t from, uint64_t to, bool paced) {
  for (uint64_t offset = from; offset < to; offset += kChunkBytes) {
    if (stopping()) return false;
    size_t n = static_cast<size_t>(std::min<uint64_t>(kChunkBytes, to - offset));
    auto start = std::chrono::steady_clock::now();
    bool ok = WriteAll(fd, kZeros, n, static_cast<off_t>(offset)) &&
              ::sync_file_range(fd, static_cast<off_t>(offset), static_cast<off_t>(n),
                                SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                                    SYNC_FILE_RANGE_WAIT_AFTER) == 0;
    if (!ok) return false;
    if (paced) {
      auto now = std::chrono::steady_clock::now();
      auto until = now + (now - start);
      if (double rate = FillBytesPerSecond(); rate > 0) {
        until = std::max(until, start + std::chrono::duration_cast<std::chrono::nanoseconds>(
                                            std::chrono::duration<double>(n / rate)));
      }
      std::this_thread::sleep_until(until);
    }
  }
  return true;
}

std::optional<std::string> WalPool::FillOne(uint64_t number, bool paced, const Recycled* from) {
  const std::string done = SparePath(number);
  const std::string tmp = done + std::string(kTmpSuffix);
  // A deleted WAL was renamed to `tmp` already.
  int fd = from ? ::open(tmp.c_str(), O_RDWR | O_CLOEXEC)
                : ::open(tmp.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
  bool ok = fd >= 0;
  if (ok && from) {
    // RocksDB wrote [0, end); past that the file is still the zeros of the
    // spare it was written over, as far as the file goes.
    struct stat st {};
    ok = ::fstat(fd, &st) == 0;
    uint64_t size = ok ? static_cast<uint64_t>(st.st_size) : 0;
    uint64_t written = std::min(from->end, file_bytes_);
    // What follows the tracked end must be zeros. A write the pool did not
    // see would begin right there: if the next piece is not all zeros, the
    // whole file is zeroed.
    if (ok && written < std::min(size, file_bytes_) && !ZerosAt(fd, written, size)) {
      written = std::min(size, file_bytes_);
    }
    ok = ok && WriteZeros(fd, 0, written, paced) &&
         (size >= file_bytes_ || WriteZeros(fd, std::max(size, written), file_bytes_, paced)) &&
         (size <= file_bytes_ || ::ftruncate(fd, static_cast<off_t>(file_bytes_)) == 0);
  } else if (ok) {
    ok = WriteZeros(fd, 0, file_bytes_, paced);
  }
  // The blocks and the size must be on disk before a WAL is written here:
  // an fdatasync of the WAL would otherwise write them first. And a deleted
  // WAL's records must be gone from the disk before the file is a spare: a
  // WAL written over it and cut short by a crash would otherwise be followed
  // by old records that read as valid.
  ok = ok && ::fdatasync(fd) == 0;
  if (fd >= 0) ok = (::close(fd) == 0) && ok;
  if (ok && ::rename(tmp.c_str(), done.c_str()) == 0) return done;
  ::unlink(tmp.c_str());
  return std::nullopt;
}

bool WalPool::NewSpareDue() const {
  if (failed_) return false;
  if (ready_.empty()) return true;
  // The WAL files RocksDB has, but the one it writes, come back as spares
  // when it deletes them (after the flushes that make them obsolete).
  size_t coming =
      ready_.size() + recycled_.size() + deferred_ + (live_.empty() ? 0 : live_.size() - 1);
  return coming < spares_;
}

double WalPool::FillBytesPerSecond() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (ready_.empty()) return 0;  // the next WAL file would find none: as fast as allowed
  return std::max(kFillBytesPerSecondMin, 2 * used_bytes_per_second_);
}

bool WalPool::stopping() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stop_;
}

void WalPool::Run() {
  pthread_setname_np(pthread_self(), "ledger-walfill");
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    // A deleted WAL first, whenever there is one: it costs a fraction of a
    // new spare. After a failure (a full disk, say) the next new spare waits
    // for a WAL to take one.
    cv_.wait(lock, [this] { return stop_ || !recycled_.empty() || NewSpareDue(); });
    if (stop_) return;
    std::optional<Recycled> from;
    uint64_t number;
    if (!recycled_.empty()) {
      from = recycled_.front();
      recycled_.erase(recycled_.begin());
      number = from->number;
    } else {
      number = next_number_++;
    }
    filling_ = true;
    lock.unlock();
    std::optional<std::string> path = FillOne(number, /*paced=*/true, from ? &*from : nullptr);
    lock.lock();
    filling_ = false;
    if (path) {
      ready_.push_back(std::move(*path));
      ++(from ? counts_.recycled : counts_.filled);
      cv_.notify_all();
    } else {
      failed_ = true;
    }
  }
}

rocksdb::IOStatus WalPool::NewWritableFile(const std::string& fname,
                                           const rocksdb::FileOptions& options,
                                           std::unique_ptr<rocksdb::FSWritableFile>* result,
                                           rocksdb::IODebugContext* dbg) {
  std::optional<uint64_t> wal_number = WalNumber(fname);
  if (!wal_number) return target()->NewWritableFile(fname, options, result, dbg);
  std::string spare;
  // Counted as coming back from the start, so the filler, woken by the spare
  // taken, does not make a new one for it.
  auto live = std::make_shared<LiveWal>();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!ready_.empty()) {
      spare = std::move(ready_.front());
      ready_.erase(ready_.begin());
    }
    failed_ = false;
    live_[*wal_number] = live;
  }
  cv_.notify_all();
  // Renames the spare to `fname` and writes it from offset 0.
  rocksdb::IOStatus s = spare.empty()
                            ? rocksdb::IOStatus::NotFound()
                            : target()->ReuseWritableFile(fname, spare, options, result, dbg);
  bool over_spare = s.ok();
  if (!over_spare) s = target()->NewWritableFile(fname, options, result, dbg);
  std::lock_guard<std::mutex> lock(mu_);
  if (!s.ok()) {
    live_.erase(*wal_number);
    return s;
  }
  ++(over_spare ? counts_.spare : counts_.nothing);
  // Either can be a spare again: a new file, as far as it was written, has
  // its pages in memory too.
  *result = std::make_unique<TrackedFile>(std::move(*result), this, std::move(live), over_spare);
  // How fast WAL files are used up: one file's size over the time since the
  // last one was created (an upper bound: RocksDB also starts a new file when
  // it flushes memtables).
  auto now = std::chrono::steady_clock::now();
  if (last_wal_created_) {
    double seconds = std::chrono::duration<double>(now - *last_wal_created_).count();
    used_bytes_per_second_ = static_cast<double>(file_bytes_) / std::max(seconds, 1e-3);
  }
  last_wal_created_ = now;
  return s;
}

rocksdb::IOStatus WalPool::ReopenWritableFile(const std::string& fname,
                                              const rocksdb::FileOptions& options,
                                              std::unique_ptr<rocksdb::FSWritableFile>* result,
                                              rocksdb::IODebugContext* dbg) {
  // Appended to where the pool cannot see: never made a spare.
  if (std::optional<uint64_t> wal_number = WalNumber(fname)) {
    std::lock_guard<std::mutex> lock(mu_);
    live_.erase(*wal_number);
  }
  return target()->ReopenWritableFile(fname, options, result, dbg);
}

rocksdb::IOStatus WalPool::DeleteFile(const std::string& fname, const rocksdb::IOOptions& options,
                                      rocksdb::IODebugContext* dbg) {
  if (std::optional<uint64_t> wal_number = WalNumber(fname)) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = live_.find(*wal_number);
    if (it != live_.end()) {
      std::shared_ptr<LiveWal> live = std::move(it->second);
      live_.erase(it);
      // Up to twice what the pool keeps ready: RocksDB switches WAL files
      // in bursts (each column family's flush starts one), and a spare made
      // from a deleted WAL costs a fraction of a new one.
      const size_t coming = ready_.size() + recycled_.size() + (filling_ ? 1 : 0) + deferred_;
      const uint64_t number = next_number_;
      const std::string tmp = SparePath(number) + std::string(kTmpSuffix);
      if (!stop_ && coming < 3 * spares_ && ::rename(fname.c_str(), tmp.c_str()) == 0) {
        ++next_number_;
        if (live->closed) {
          recycled_.push_back(Recycled{number, live->end.load(std::memory_order_acquire)});
          cv_.notify_all();
        } else {
          live->deleted_as = number;  // its writer's Close hands it on
          ++deferred_;
        }
        return rocksdb::IOStatus::OK();
      }
    }
  }
  return target()->DeleteFile(fname, options, dbg);
}

void WalPool::Closed(LiveWal& live) {
  std::lock_guard<std::mutex> lock(mu_);
  live.closed = true;
  if (live.deleted_as) {
    --deferred_;
    recycled_.push_back(Recycled{*live.deleted_as, live.end.load(std::memory_order_acquire)});
    cv_.notify_all();
  }
}

WalPool::Counts WalPool::counts() const {
  std::lock_guard<std::mutex> lock(mu_);
  return counts_;
}

void WalPool::WaitFull() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] {
    return stop_ || lock_fd_ < 0 || failed_ || (!filling_ && recycled_.empty() && !NewSpareDue());
  });
}

}  // namespace ledger
