// The in-memory projection: every user's state, folded from the log.
//
// Users live in a deque (stable addresses, in order of first appearance)
// with an id -> index map; that makes a consistent snapshot cheap: a capture
// at seq S records only how many users there were, and a background thread
// copies them while the writer saves, once, the state of any not-yet-copied
// user it is about to change.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "projections/user_state.h"

namespace ledger {

// XXH3-64 of a user id: the index's hash and the seed of the user's state hash.
uint64_t UserIdHash(std::string_view user_id);

// Open addressing, linear probing: user id hash -> position in the deque.
// Storing the full hash in the slot means a probe touches the user's entry
// only when the hashes match (one cache miss for the slot, one for the entry,
// instead of the bucket, node and key of a node-based map).
class UserIndex {
 public:
  static constexpr uint32_t kEmpty = 0xffffffff;
  // The position of `user_id` (whose hash is `hash`), or kEmpty.
  template <typename KeyAt>
  uint32_t Find(std::string_view user_id, uint64_t hash, const KeyAt& key_at) const {
    if (slots_.empty()) return kEmpty;
    for (size_t i = hash & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.index == kEmpty) return kEmpty;
      if (s.hash == hash && key_at(s.index) == user_id) return s.index;
    }
  }
  void Insert(uint64_t hash, uint32_t index);
  // Empties the index, keeping its slots for the next fill. `for_each_hash(f)`
  // calls f with the hash of everything inserted: a few entries in many
  // slots are cleared by the runs of slots from their home slots (every run
  // of occupied slots starts at its first entry's home) instead of slot by
  // slot.
  template <typename ForEachHash>
  void Clear(const ForEachHash& for_each_hash) {
    if (size_ * 8 < slots_.size()) {
      for_each_hash([this](uint64_t hash) {
        for (size_t i = hash & mask_; slots_[i].index != kEmpty; i = (i + 1) & mask_) {
          slots_[i] = Slot{};
        }
      });
    } else {
      std::fill(slots_.begin(), slots_.end(), Slot{});
    }
    size_ = 0;
  }
  size_t size() const { return size_; }
  void Prefetch(uint64_t hash) const {
    if (!slots_.empty()) __builtin_prefetch(&slots_[hash & mask_]);
  }
  // The position in the first slot holding `hash` (usually the user), or kEmpty.
  uint32_t FirstWithHash(uint64_t hash) const {
    if (slots_.empty()) return kEmpty;
    for (size_t i = hash & mask_;; i = (i + 1) & mask_) {
      if (slots_[i].index == kEmpty || slots_[i].hash == hash) return slots_[i].index;
    }
  }

 private:
  struct Slot {
    uint64_t hash = 0;
    uint32_t index = kEmpty;
  };
  void Grow();
  std::vector<Slot> slots_;
  size_t mask_ = 0;
  size_t size_ = 0;
};

struct UserEntry {
  std::string user_id;
  UserState state;
};

class Projection {
 public:
  explicit Projection(Bounds bounds = {}) : bounds_(bounds) {}
  Projection(Projection&&) = delete;

  Bounds bounds() const { return bounds_; }

  // nullptr for a user with no events.
  const UserState* Find(std::string_view user_id) const {
    return Find(user_id, UserIdHash(user_id));
  }
  // The same with the user id's hash already computed.
  const UserState* Find(std::string_view user_id, uint64_t user_id_hash) const;

  // The fold used by replay: applies one event in seq order.
  Status Apply(const Event& event) { return Apply(event, UserIdHash(event.user_id)); }
  // The same with the user id's hash already computed (see Prefetch).
  Status Apply(const Event& event, uint64_t user_id_hash);

  // Replay hides memory latency over a window of upcoming events: first
  // PrefetchSlot for each, then PrefetchEntry for each, then Apply in order.
  void PrefetchSlot(uint64_t user_id_hash) const { index_.Prefetch(user_id_hash); }
  void PrefetchEntry(uint64_t user_id_hash) const {
    uint32_t i = index_.FirstWithHash(user_id_hash);  // no key comparison: no stall
    if (i != UserIndex::kEmpty) __builtin_prefetch(&users_[i]);
  }

  // Live path: the writer folds a group into copies (with ApplyEvent, the same
  // fold) and publishes each changed user here once the group is durable.
  // REQUIRES: the projection's exclusive lock.
  void Publish(std::string_view user_id, UserState state) {
    Publish(user_id, UserIdHash(user_id), std::move(state));
  }
  void Publish(std::string_view user_id, uint64_t user_id_hash, UserState state);
  void SetLastSeq(Seq seq, uint64_t events) {
    last_seq_ = seq;
    event_count_ = events;
  }

  Seq last_seq() const { return last_seq_; }
  uint64_t event_count() const { return event_count_; }
  size_t user_count() const { return users_.size(); }
  uint64_t state_hash() const { return state_hash_; }
  // Users in order of first appearance.
  const std::deque<UserEntry>& users() const { return users_; }

  // Restores a user from a snapshot (recovery), before any event is applied.
  void Restore(std::string user_id, UserState state);
  void SetRestoredPosition(Seq seq, uint64_t events) { SetLastSeq(seq, events); }

  // --- consistent capture for snapshots ---
  // Starts a capture of the first `user_count()` users as they are now.
  // REQUIRES: exclusive lock (the writer thread, between groups). O(1).
  void BeginCapture();
  // Copies users [from, to) of the capture into `out` as they were when it
  // began. REQUIRES: the shared lock; from is where the last call ended.
  void CopyCaptured(size_t from, size_t to, std::vector<UserEntry>* out) const;
  size_t capture_size() const { return capture_size_; }
  // REQUIRES: exclusive lock.
  void EndCapture();

 private:
  UserEntry& Insert(std::string_view user_id, uint64_t hash);
  uint32_t IndexOf(std::string_view user_id, uint64_t hash) const {
    return index_.Find(user_id, hash,
                       [this](uint32_t i) -> std::string_view { return users_[i].user_id; });
  }
  void SaveIfCapturing(size_t index);

  Bounds bounds_;
  std::deque<UserEntry> users_;
  UserIndex index_;
  Seq last_seq_ = 0;
  uint64_t event_count_ = 0;
  uint64_t state_hash_ = 0;

  bool capturing_ = false;
  size_t capture_size_ = 0;
  mutable std::atomic<size_t> copied_upto_{0};
  std::unordered_map<size_t, UserState> preimages_;  // index -> state at capture
};

}  // namespace ledger
