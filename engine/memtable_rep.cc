#include "engine/memtable_rep.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstdint>
#include <cstring>
#include <new>
#include <vector>

#include <xxhash.h>

#if ROCKSDB_MAJOR == 7
namespace rocksdb {

// RocksDB 7.x's memory/allocator.h, which is not installed: the interface of
// the arenas RocksDB hands a memtable representation (the memtable's own for
// entries; an iterator's for the iterator object). Its layout is RocksDB's
// (an Arena is an Allocator at offset 0).
class Allocator {
 public:
  virtual ~Allocator() {}
  virtual char* Allocate(size_t bytes) = 0;
  virtual char* AllocateAligned(size_t bytes, size_t huge_page_size = 0,
                                Logger* logger = nullptr) = 0;
  virtual size_t BlockSize() const = 0;
};

}  // namespace rocksdb
#endif

namespace ledger {

#if ROCKSDB_MAJOR == 7
namespace {

constexpr int kMaxHeight = 12;

// The start of RocksDB's LookupKey (db/lookup_key.h, not installed; the same
// since LevelDB): the key as a memtable holds it (length-prefixed internal
// key), then the internal key, then its end.
struct LookupKeyLayout {
  const char* start;
  const char* kstart;
  const char* end;
};

// A memtable entry is varint32 length | internal key | varint32 length |
// value; the internal key is the user key and 8 bytes (seq << 8 | type,
// little-endian). Entries order by user key (bytewise), then newest first.
inline const char* DecodeLength(const char* p, uint32_t* length) {
  uint32_t byte = static_cast<uint8_t>(*p++);
  if (byte < 128) {
    *length = byte;
    return p;
  }
  uint32_t result = byte & 127;
  for (int shift = 7; shift <= 28; shift += 7) {
    byte = static_cast<uint8_t>(*p++);
    result |= (byte & 127) << shift;
    if (byte < 128) break;
  }
  *length = result;
  return p;
}

inline uint64_t Trailer(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);  // RocksDB writes it little-endian on every machine
  if constexpr (std::endian::native == std::endian::big) v = __builtin_bswap64(v);
  return v;
}

// <0, 0, >0 as internal key `a` sorts before, with, after `b`.
inline int CompareInternal(const char* a, size_t a_size, const char* b, size_t b_size) {
  size_t a_user = a_size - 8;
  size_t b_user = b_size - 8;
  int r = std::memcmp(a, b, a_user < b_user ? a_user : b_user);
  if (r != 0) return r;
  if (a_user != b_user) return a_user < b_user ? -1 : 1;
  uint64_t ta = Trailer(a + a_user);
  uint64_t tb = Trailer(b + b_user);
  if (ta == tb) return 0;
  return ta > tb ? -1 : 1;  // newer (larger seq) first
}

inline rocksdb::Slice InternalKey(const char* entry) {
  uint32_t n;
  const char* p = DecodeLength(entry, &n);
  return rocksdb::Slice(p, n);
}

inline int CompareEntry(const char* entry, const rocksdb::Slice& internal_key) {
  rocksdb::Slice k = InternalKey(entry);
  return CompareInternal(k.data(), k.size(), internal_key.data(), internal_key.size());
}

// A node: its height, its links (one per level), then the entry's bytes.
struct Node {
  int32_t height;
  int32_t padding;  // the links that follow are 8-byte aligned

  std::atomic<Node*>* Links() {
    return reinterpret_cast<std::atomic<Node*>*>(reinterpret_cast<char*>(this) + sizeof(Node));
  }
  const std::atomic<Node*>* Links() const {
    return reinterpret_cast<const std::atomic<Node*>*>(reinterpret_cast<const char*>(this) +
                                                       sizeof(Node));
  }
  char* Entry() { return reinterpret_cast<char*>(Links() + height); }
  const char* Entry() const { return reinterpret_cast<const char*>(Links() + height); }

  Node* Next(int level) const { return Links()[level].load(std::memory_order_acquire); }
  Node* NextRelaxed(int level) const { return Links()[level].load(std::memory_order_relaxed); }
  // Publishes this node to readers coming through `level`.
  void SetNext(int level, Node* next) { Links()[level].store(next, std::memory_order_release); }
  void SetNextRelaxed(int level, Node* next) {
    Links()[level].store(next, std::memory_order_relaxed);
  }
};

class SkipListRep final : public rocksdb::MemTableRep {
 public:
  explicit SkipListRep(rocksdb::Allocator* allocator)
      : MemTableRep(allocator), head_(NewNode(kMaxHeight, 0)) {
    for (int i = 0; i < kMaxHeight; ++i) {
      head_->SetNextRelaxed(i, nullptr);
      splice_[i] = head_;
    }
  }

  rocksdb::KeyHandle Allocate(const size_t len, char** buf) override {
    Node* node = NewNode(RandomHeight(), len);
    *buf = node->Entry();
    return node;
  }

  // Single writer (the memtable is written by one thread at a time).
  void Insert(rocksdb::KeyHandle handle) override {
    Node* x = static_cast<Node*>(handle);
    rocksdb::Slice key = InternalKey(x->Entry());
    const int height = x->height;
    const int max_height = max_height_.load(std::memory_order_relaxed);
    // The previous insert's place brackets the key from some level up when
    // the key comes after it (the next seq of the log, the next of a sorted
    // group): find the lowest such level; search below it from there. Else
    // search from the top.
    int level = max_height;
    if (last_ != nullptr && CompareEntry(last_->Entry(), key) < 0) {
      level = 0;
      while (level < max_height) {
        Node* next = splice_[level]->NextRelaxed(level);
        if (next == nullptr || CompareEntry(next->Entry(), key) > 0) break;
        ++level;
      }
    }
    Node* prev[kMaxHeight];
    for (int i = level; i < kMaxHeight; ++i) prev[i] = i < max_height ? splice_[i] : head_;
    Node* from = level < max_height ? splice_[level] : head_;
    for (int i = level - 1; i >= 0; --i) {
      for (Node* next = from->NextRelaxed(i);
           next != nullptr && CompareEntry(next->Entry(), key) < 0; next = from->NextRelaxed(i)) {
        from = next;
      }
      prev[i] = from;
    }
    if (height > max_height) max_height_.store(height, std::memory_order_relaxed);
    // Bottom up, each level's link set before the node is published there.
    for (int i = 0; i < height; ++i) {
      x->SetNextRelaxed(i, prev[i]->NextRelaxed(i));
      prev[i]->SetNext(i, x);
    }
    for (int i = 0; i < kMaxHeight; ++i) splice_[i] = i < height ? x : prev[i];
    last_ = x;
  }

  // RocksDB's default Get makes an iterator per lookup and does not free it.
  void Get(const rocksdb::LookupKey& k, void* callback_args,
           bool (*callback_func)(void* arg, const char* entry)) override {
    rocksdb::Slice key = InternalKey(reinterpret_cast<const LookupKeyLayout*>(&k)->start);
    for (Node* x = FindGreaterOrEqual(key);
         x != nullptr && callback_func(callback_args, x->Entry()); x = x->Next(0)) {
    }
  }

  bool Contains(const char* entry) const override {
    return FindEqual(InternalKey(entry)) != nullptr;
  }

  // Everything is in the memtable's arena, which RocksDB counts itself.
  size_t ApproximateMemoryUsage() override { return 0; }

  Iterator* GetIterator(rocksdb::Arena* arena) override {
    if (arena == nullptr) return new Iter(this);
    // In arena mode RocksDB only runs the destructor: the memory is the
    // arena's, freed with it.
    void* mem = reinterpret_cast<rocksdb::Allocator*>(arena)->AllocateAligned(sizeof(Iter));
    return new (mem) Iter(this);
  }

 private:
  class Iter final : public Iterator {
   public:
    explicit Iter(const SkipListRep* list) : list_(list) {}
    bool Valid() const override { return node_ != nullptr; }
    const char* key() const override { return node_->Entry(); }
    void Next() override { node_ = node_->Next(0); }
    void Prev() override { node_ = list_->FindLessThan(InternalKey(node_->Entry())); }
    void Seek(const rocksdb::Slice& internal_key, const char* /*memtable_key*/) override {
      node_ = list_->FindGreaterOrEqual(internal_key);
    }
    void SeekForPrev(const rocksdb::Slice& internal_key, const char* /*memtable_key*/) override {
      node_ = list_->FindEqual(internal_key);
      if (node_ == nullptr) node_ = list_->FindLessThan(internal_key);
    }
    void SeekToFirst() override { node_ = list_->head_->Next(0); }
    void SeekToLast() override { node_ = list_->FindLast(); }

   private:
    const SkipListRep* list_;
    Node* node_ = nullptr;
  };

  Node* NewNode(int height, size_t entry_size) {
    size_t bytes = sizeof(Node) + sizeof(std::atomic<Node*>) * height + entry_size;
    char* mem = allocator_->AllocateAligned(bytes);
    Node* node = new (mem) Node{height, 0};
    for (int i = 0; i < height; ++i) new (&node->Links()[i]) std::atomic<Node*>(nullptr);
    return node;
  }

  int RandomHeight() {
    // xorshift64; each level above the first with probability 1/4.
    int height = 1;
    for (;;) {
      rng_ ^= rng_ << 13;
      rng_ ^= rng_ >> 7;
      rng_ ^= rng_ << 17;
      if (height >= kMaxHeight || (rng_ & 3) != 0) break;
      ++height;
    }
    return height;
  }

  // The first node not before `key`; null when none.
  Node* FindGreaterOrEqual(const rocksdb::Slice& key) const {
    Node* x = head_;
    Node* bigger = nullptr;  // known not before the key, at the level above
    for (int level = max_height_.load(std::memory_order_relaxed) - 1;;) {
      Node* next = x->Next(level);
      int c = (next == nullptr || next == bigger) ? 1 : CompareEntry(next->Entry(), key);
      if (c == 0) return next;
      if (c < 0) {
        x = next;
      } else {
        if (level == 0) return next;
        bigger = next;
        --level;
      }
    }
  }

  // The node holding `key`; null when none.
  Node* FindEqual(const rocksdb::Slice& key) const {
    Node* x = FindGreaterOrEqual(key);
    return x != nullptr && CompareEntry(x->Entry(), key) == 0 ? x : nullptr;
  }

  // The last node before `key`; null when none.
  Node* FindLessThan(const rocksdb::Slice& key) const {
    Node* x = head_;
    Node* not_before = nullptr;
    for (int level = max_height_.load(std::memory_order_relaxed) - 1;;) {
      Node* next = x->Next(level);
      if (next != nullptr && next != not_before && CompareEntry(next->Entry(), key) < 0) {
        x = next;
      } else {
        if (level == 0) return x == head_ ? nullptr : x;
        not_before = next;
        --level;
      }
    }
  }

  Node* FindLast() const {
    Node* x = head_;
    for (int level = max_height_.load(std::memory_order_relaxed) - 1;;) {
      Node* next = x->Next(level);
      if (next != nullptr) {
        x = next;
      } else {
        if (level == 0) return x == head_ ? nullptr : x;
        --level;
      }
    }
  }

  Node* const head_;
  std::atomic<int> max_height_{1};
  // Writer only: the previous insert, and per level the last node before it
  // (or it, on its own levels).
  Node* last_ = nullptr;
  Node* splice_[kMaxHeight];
  uint64_t rng_ = 0x9E3779B97F4A7C15ull;
};

// The point-lookup families' memtable (by_key, payments): a hash table of
// chains instead of a skiplist. Their keys arrive in no order (a user's
// key; a payment id), and a skiplist insert of a random key walks a dozen
// levels of nodes scattered over the memtable, a cache miss at each; here
// an insert is one bucket. Reads are point reads (and the key filters
// leave few of those); a full iteration, which the flush needs, sorts a
// snapshot of the entries once.
struct HashNode {
  std::atomic<HashNode*> next;  // in the bucket's chain, newer to older
  HashNode* older;              // every entry, newest first (set before publishing)
  HashNode* Next() const { return next.load(std::memory_order_acquire); }
  char* Entry() { return reinterpret_cast<char*>(this + 1); }
  const char* Entry() const { return reinterpret_cast<const char*>(this + 1); }
};

class HashRep final : public rocksdb::MemTableRep {
 public:
  HashRep(rocksdb::Allocator* allocator, size_t buckets)
      : MemTableRep(allocator),
        mask_(buckets - 1),
        buckets_(reinterpret_cast<std::atomic<HashNode*>*>(
            allocator->AllocateAligned(sizeof(std::atomic<HashNode*>) * buckets))) {
    for (size_t i = 0; i < buckets; ++i) new (&buckets_[i]) std::atomic<HashNode*>(nullptr);
  }

  rocksdb::KeyHandle Allocate(const size_t len, char** buf) override {
    char* mem = allocator_->AllocateAligned(sizeof(HashNode) + len);
    HashNode* node = new (mem) HashNode{{nullptr}, nullptr};
    *buf = node->Entry();
    return node;
  }

  // Single writer. Entries of one user key come in increasing seq (one
  // writer assigns them in order), so each chain holds them newest first,
  // as the internal key order wants.
  void Insert(rocksdb::KeyHandle handle) override {
    HashNode* x = static_cast<HashNode*>(handle);
    rocksdb::Slice key = InternalKey(x->Entry());
    std::atomic<HashNode*>& bucket = buckets_[Bucket(key)];
    x->next.store(bucket.load(std::memory_order_relaxed), std::memory_order_relaxed);
    x->older = newest_.load(std::memory_order_relaxed);
    bucket.store(x, std::memory_order_release);
    newest_.store(x, std::memory_order_release);
  }

  // The entries of the lookup's user key not newer than its seq, newest
  // first, while the callback asks for more (it stops at a value or a
  // deletion; it would stop at another user key too, so none is given).
  void Get(const rocksdb::LookupKey& k, void* callback_args,
           bool (*callback_func)(void* arg, const char* entry)) override {
    rocksdb::Slice key = InternalKey(reinterpret_cast<const LookupKeyLayout*>(&k)->start);
    for (HashNode* x = Chain(key); x != nullptr; x = x->Next()) {
      if (SameUserKey(InternalKey(x->Entry()), key) && CompareEntry(x->Entry(), key) >= 0 &&
          !callback_func(callback_args, x->Entry())) {
        return;
      }
    }
  }

  bool Contains(const char* entry) const override {
    rocksdb::Slice key = InternalKey(entry);
    for (HashNode* x = Chain(key); x != nullptr; x = x->Next()) {
      if (CompareEntry(x->Entry(), key) == 0) return true;
    }
    return false;
  }

  // Everything (the buckets too) is in the memtable's arena, which RocksDB
  // counts itself.
  size_t ApproximateMemoryUsage() override { return 0; }

  Iterator* GetIterator(rocksdb::Arena* arena) override {
    if (arena == nullptr) return new Iter(newest_.load(std::memory_order_acquire));
    void* mem = reinterpret_cast<rocksdb::Allocator*>(arena)->AllocateAligned(sizeof(Iter));
    return new (mem) Iter(newest_.load(std::memory_order_acquire));
  }

 private:
  // A sorted snapshot of the entries published when it was made (later
  // ones are newer than any read that makes an iterator can see).
  class Iter final : public Iterator {
   public:
    explicit Iter(const HashNode* newest) {
      for (const HashNode* x = newest; x != nullptr; x = x->older) entries_.push_back(x->Entry());
      std::sort(entries_.begin(), entries_.end(),
                [](const char* a, const char* b) { return CompareEntry(a, InternalKey(b)) < 0; });
      at_ = entries_.size();
    }
    bool Valid() const override { return at_ < entries_.size(); }
    const char* key() const override { return entries_[at_]; }
    void Next() override { ++at_; }
    void Prev() override { at_ = at_ == 0 ? entries_.size() : at_ - 1; }
    void Seek(const rocksdb::Slice& internal_key, const char* /*memtable_key*/) override {
      at_ = LowerBound(internal_key);
    }
    void SeekForPrev(const rocksdb::Slice& internal_key, const char* /*memtable_key*/) override {
      // The last entry not after the key.
      size_t upper = LowerBound(internal_key);
      if (upper < entries_.size() && CompareEntry(entries_[upper], internal_key) == 0) {
        at_ = upper;
      } else {
        at_ = upper == 0 ? entries_.size() : upper - 1;
      }
    }
    void SeekToFirst() override { at_ = 0; }
    void SeekToLast() override { at_ = entries_.empty() ? 0 : entries_.size() - 1; }

   private:
    size_t LowerBound(const rocksdb::Slice& key) const {
      return static_cast<size_t>(std::lower_bound(entries_.begin(), entries_.end(), key,
                                                  [](const char* e, const rocksdb::Slice& k) {
                                                    return CompareEntry(e, k) < 0;
                                                  }) -
                                 entries_.begin());
    }

    std::vector<const char*> entries_;
    size_t at_ = 0;
  };

  static bool SameUserKey(const rocksdb::Slice& a, const rocksdb::Slice& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() - 8) == 0;
  }
  size_t Bucket(const rocksdb::Slice& internal_key) const {
    return static_cast<size_t>(XXH3_64bits(internal_key.data(), internal_key.size() - 8)) & mask_;
  }
  // The newest entry of `internal_key`'s bucket (then HashNode::Next).
  HashNode* Chain(const rocksdb::Slice& internal_key) const {
    return buckets_[Bucket(internal_key)].load(std::memory_order_acquire);
  }

  const size_t mask_;
  std::atomic<HashNode*>* const buckets_;
  std::atomic<HashNode*> newest_{nullptr};
};

class HashFactory final : public rocksdb::MemTableRepFactory {
 public:
  explicit HashFactory(size_t buckets) : buckets_(buckets) {}
  rocksdb::MemTableRep* CreateMemTableRep(const rocksdb::MemTableRep::KeyComparator&,
                                          rocksdb::Allocator* allocator,
                                          const rocksdb::SliceTransform*,
                                          rocksdb::Logger*) override {
    return new HashRep(allocator, buckets_);
  }
  const char* Name() const override { return "LedgerHashFactory"; }
  bool IsInsertConcurrentlySupported() const override { return false; }
  bool CanHandleDuplicatedKey() const override { return false; }

 private:
  size_t buckets_;
};

class Factory final : public rocksdb::MemTableRepFactory {
 public:
  rocksdb::MemTableRep* CreateMemTableRep(const rocksdb::MemTableRep::KeyComparator&,
                                          rocksdb::Allocator* allocator,
                                          const rocksdb::SliceTransform*,
                                          rocksdb::Logger*) override {
    return new SkipListRep(allocator);
  }
  const char* Name() const override { return "LedgerSkipListFactory"; }
  bool IsInsertConcurrentlySupported() const override { return false; }
  bool CanHandleDuplicatedKey() const override { return false; }
};

}  // namespace

std::shared_ptr<rocksdb::MemTableRepFactory> NewLedgerMemTableFactory() {
  return std::make_shared<Factory>();
}

std::shared_ptr<rocksdb::MemTableRepFactory> NewLedgerPointMemTableFactory(size_t buckets) {
  return std::make_shared<HashFactory>(std::bit_ceil(std::max<size_t>(buckets, 1)));
}

#else

std::shared_ptr<rocksdb::MemTableRepFactory> NewLedgerMemTableFactory() { return nullptr; }
std::shared_ptr<rocksdb::MemTableRepFactory> NewLedgerPointMemTableFactory(size_t) {
  return nullptr;
}

#endif

}  // namespace ledger
