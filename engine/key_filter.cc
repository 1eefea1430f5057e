#include "engine/key_filter.h"

#include <algorithm>

namespace ledger {

namespace {

constexpr size_t kWordsPerBlock = 8;  // 512 bits: one cache line
constexpr int kProbes = 6;
constexpr size_t kBitsPerKey = 10;
constexpr size_t kMinKeys = 1 << 16;
constexpr size_t kGrowth = 4;

// The block of a hash: its lower 32 bits scaled to [0, blocks) (no division).
inline size_t BlockOf(uint64_t hash, size_t blocks) {
  return static_cast<size_t>((static_cast<uint64_t>(static_cast<uint32_t>(hash)) * blocks) >> 32);
}

// Calls f(word, bit) for each probe of `hash` in its block: the upper 32
// bits remixed per probe, 9 bits of each picking one of the block's 512.
template <typename F>
inline void ForEachProbe(uint64_t hash, F f) {
  uint32_t h = static_cast<uint32_t>(hash >> 32);
  for (int i = 0; i < kProbes; ++i) {
    h *= 0x9e3779b9u;
    uint32_t bit = h >> 23;
    f(bit >> 6, uint64_t{1} << (bit & 63));
  }
}

}  // namespace

struct KeyFilter::Level {
  explicit Level(size_t capacity_keys)
      : capacity(capacity_keys),
        blocks(std::max<size_t>(1, capacity_keys * kBitsPerKey / (kWordsPerBlock * 64))),
        words(new std::atomic<uint64_t>[blocks * kWordsPerBlock]()) {}
  bool MayContain(uint64_t hash) const {
    const std::atomic<uint64_t>* block = &words[BlockOf(hash, blocks) * kWordsPerBlock];
    bool all = true;
    ForEachProbe(hash, [&](uint32_t word, uint64_t mask) {
      all = all && (block[word].load(std::memory_order_relaxed) & mask) != 0;
    });
    return all;
  }
  void Set(uint64_t hash) {
    std::atomic<uint64_t>* block = &words[BlockOf(hash, blocks) * kWordsPerBlock];
    ForEachProbe(hash, [&](uint32_t word, uint64_t mask) {
      block[word].fetch_or(mask, std::memory_order_relaxed);
    });
  }

  const size_t capacity;
  const size_t blocks;
  std::unique_ptr<std::atomic<uint64_t>[]> words;
  std::atomic<size_t> keys{0};
};

KeyFilter::KeyFilter(size_t expected_keys) {
  levels_[0].store(new Level(std::max(kMinKeys, expected_keys)), std::memory_order_release);
  level_count_.store(1, std::memory_order_release);
}

KeyFilter::~KeyFilter() {
  for (auto& level : levels_) delete level.load(std::memory_order_relaxed);
}

void KeyFilter::Add(uint64_t hash) {
  Level* level =
      levels_[level_count_.load(std::memory_order_acquire) - 1].load(std::memory_order_acquire);
  if (level->keys.fetch_add(1, std::memory_order_relaxed) >= level->capacity) {
    level = NextLevel(level);
  }
  level->Set(hash);
}

KeyFilter::Level* KeyFilter::NextLevel(Level* full) {
  std::lock_guard<std::mutex> lock(grow_mu_);
  full->keys.fetch_sub(1, std::memory_order_relaxed);  // the place it could not take
  int n = level_count_.load(std::memory_order_relaxed);
  Level* last = levels_[n - 1].load(std::memory_order_relaxed);
  if (last == full && n < kMaxLevels) {
    last = new Level(full->capacity * kGrowth);
    levels_[n].store(last, std::memory_order_release);
    level_count_.store(n + 1, std::memory_order_release);
  }
  last->keys.fetch_add(1, std::memory_order_relaxed);
  return last;
}

bool KeyFilter::MayContain(uint64_t hash) const {
  if (!ready_.load(std::memory_order_acquire)) return true;
  int n = level_count_.load(std::memory_order_acquire);
  for (int i = n - 1; i >= 0; --i) {
    if (levels_[i].load(std::memory_order_acquire)->MayContain(hash)) return true;
  }
  return false;
}

template <typename F>
size_t KeyFilter::SumOverLevels(F f) const {
  size_t total = 0;
  for (int i = 0; i < level_count_.load(std::memory_order_acquire); ++i) {
    total += f(*levels_[i].load(std::memory_order_acquire));
  }
  return total;
}

size_t KeyFilter::keys() const {
  return SumOverLevels([](const Level& l) { return l.keys.load(std::memory_order_relaxed); });
}

size_t KeyFilter::bytes() const {
  return SumOverLevels([](const Level& l) { return l.blocks * kWordsPerBlock * 8; });
}

}  // namespace ledger
