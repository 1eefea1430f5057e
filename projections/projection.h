// The in-memory projection: every user's state, folded from the log.
//
// Users live in a deque (stable addresses, in order of first appearance)
// with an id -> index map; that makes a consistent snapshot cheap: a capture
// at seq S records only how many users there were, and a background thread
// copies them while the writer saves, once, the state of any not-yet-copied
// user it is about to change.
#pragma once

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

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept;
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
  const UserState* Find(std::string_view user_id) const;

  // The fold used by replay: applies one event in seq order.
  Status Apply(const Event& event);

  // Live path: the writer folds a group into copies (with ApplyEvent, the same
  // fold) and publishes each changed user here once the group is durable.
  // REQUIRES: the projection's exclusive lock.
  void Publish(std::string_view user_id, UserState state);
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
  UserEntry& Insert(std::string_view user_id);
  void SaveIfCapturing(size_t index);

  Bounds bounds_;
  std::deque<UserEntry> users_;
  std::unordered_map<std::string_view, uint32_t, StringHash, std::equal_to<>> index_;
  Seq last_seq_ = 0;
  uint64_t event_count_ = 0;
  uint64_t state_hash_ = 0;

  bool capturing_ = false;
  size_t capture_size_ = 0;
  mutable std::atomic<size_t> copied_upto_{0};
  std::unordered_map<size_t, UserState> preimages_;  // index -> state at capture
};

}  // namespace ledger
