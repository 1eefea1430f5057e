#include "projections/projection.h"

#include <xxhash.h>

namespace ledger {

size_t StringHash::operator()(std::string_view s) const noexcept {
  return static_cast<size_t>(XXH3_64bits(s.data(), s.size()));
}

const UserState* Projection::Find(std::string_view user_id) const {
  auto it = users_.find(user_id);
  return it == users_.end() ? nullptr : &it->second;
}

Status Projection::Apply(const Event& event) {
  if (event.seq <= last_seq_) {
    return Status::Error("seq " + std::to_string(event.seq) + " does not follow seq " +
                         std::to_string(last_seq_));
  }
  auto it = users_.find(std::string_view(event.user_id));
  bool fresh = it == users_.end();
  if (fresh) it = users_.emplace(event.user_id, UserState{}).first;
  UserState& state = it->second;
  uint64_t old_hash = fresh ? 0 : state.hash;
  Status s = ApplyEvent(state, event, bounds_);
  if (!s.ok()) {
    if (fresh) users_.erase(it);
    return s;
  }
  state.hash = HashUserState(event.user_id, state);
  state_hash_ += state.hash - old_hash;
  last_seq_ = event.seq;
  ++event_count_;
  return Status::Ok();
}

void Projection::Publish(std::string_view user_id, UserState state) {
  state.hash = HashUserState(user_id, state);
  auto it = users_.find(user_id);
  if (it == users_.end()) {
    state_hash_ += state.hash;
    users_.emplace(std::string(user_id), std::move(state));
    return;
  }
  state_hash_ += state.hash - it->second.hash;
  it->second = std::move(state);
}

}  // namespace ledger
