#include "engine/wal_pool.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
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

}  // namespace

bool WalPool::IsWalFile(const std::string& fname) {
  // RocksDB names its WAL files <number>.log.
  constexpr std::string_view kSuffix = ".log";
  std::string_view base = fname;
  base = base.substr(base.rfind('/') + 1);  // npos + 1 == 0: no directory
  return base.ends_with(kSuffix) &&
         ParseDecimal(base.substr(0, base.size() - kSuffix.size())).has_value();
}

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
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

std::optional<std::string> WalPool::FillOne(uint64_t number, bool paced) {
  const std::string done = dir_ + "/" + std::string(kSparePrefix) + std::to_string(number);
  const std::string tmp = done + std::string(kTmpSuffix);
  int fd = ::open(tmp.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0) return std::nullopt;
  bool ok = true;
  for (uint64_t offset = 0; ok && offset < file_bytes_; offset += kChunkBytes) {
    if (stopping()) {
      ok = false;
      break;
    }
    size_t n = static_cast<size_t>(std::min<uint64_t>(kChunkBytes, file_bytes_ - offset));
    auto start = std::chrono::steady_clock::now();
    ok = WriteAll(fd, kZeros, n, static_cast<off_t>(offset)) &&
         ::sync_file_range(
             fd, static_cast<off_t>(offset), static_cast<off_t>(n),
             SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER) == 0;
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
  // The blocks and the size must be on disk before a WAL is written here:
  // an fdatasync of the WAL would otherwise write them first.
  ok = ok && ::fdatasync(fd) == 0;
  ok = (::close(fd) == 0) && ok;
  if (ok && ::rename(tmp.c_str(), done.c_str()) == 0) return done;
  ::unlink(tmp.c_str());
  return std::nullopt;
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
    // After a failure (a full disk, say) the next try waits for a WAL to
    // take a spare.
    cv_.wait(lock, [this] { return stop_ || (ready_.size() < spares_ && !failed_); });
    if (stop_) return;
    uint64_t number = next_number_++;
    lock.unlock();
    std::optional<std::string> path = FillOne(number, /*paced=*/true);
    lock.lock();
    if (path) {
      ready_.push_back(std::move(*path));
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
  if (!IsWalFile(fname)) return target()->NewWritableFile(fname, options, result, dbg);
  std::string spare;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!ready_.empty()) {
      spare = std::move(ready_.front());
      ready_.erase(ready_.begin());
    }
    failed_ = false;
  }
  cv_.notify_all();
  // Renames the spare to `fname` and writes it from offset 0.
  rocksdb::IOStatus s = spare.empty()
                            ? rocksdb::IOStatus::NotFound()
                            : target()->ReuseWritableFile(fname, spare, options, result, dbg);
  bool over_spare = s.ok();
  if (!over_spare) s = target()->NewWritableFile(fname, options, result, dbg);
  std::lock_guard<std::mutex> lock(mu_);
  ++(over_spare ? counts_.spare : counts_.nothing);
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

WalPool::Counts WalPool::counts() const {
  std::lock_guard<std::mutex> lock(mu_);
  return counts_;
}

void WalPool::WaitFull() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return stop_ || lock_fd_ < 0 || failed_ || ready_.size() >= spares_; });
}

}  // namespace ledger
