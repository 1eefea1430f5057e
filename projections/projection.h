// The in-memory projection: every user's state, folded from the log.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "projections/user_state.h"

namespace ledger {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept;
};

class Projection {
 public:
  using Map = std::unordered_map<std::string, UserState, StringHash, std::equal_to<>>;

  explicit Projection(Bounds bounds = {}) : bounds_(bounds) {}

  Bounds bounds() const { return bounds_; }

  // nullptr for a user with no events.
  const UserState* Find(std::string_view user_id) const;

  // The fold used by replay: applies one event in seq order.
  Status Apply(const Event& event);

  // Live path: the writer folds a group into copies (with ApplyEvent, the same
  // fold) and publishes each changed user here once the group is durable.
  void Publish(std::string_view user_id, UserState state);
  void SetLastSeq(Seq seq, uint64_t events) {
    last_seq_ = seq;
    event_count_ = events;
  }

  Seq last_seq() const { return last_seq_; }
  uint64_t event_count() const { return event_count_; }
  size_t user_count() const { return users_.size(); }
  uint64_t state_hash() const { return state_hash_; }
  const Map& users() const { return users_; }

  // Pre-sizes the map (recovery knows the user count from the snapshot).
  void Reserve(size_t users) { users_.reserve(users); }

 private:
  Bounds bounds_;
  Map users_;
  Seq last_seq_ = 0;
  uint64_t event_count_ = 0;
  uint64_t state_hash_ = 0;
};

}  // namespace ledger
