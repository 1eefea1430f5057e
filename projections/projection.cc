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
  if (it == users_.end()) it = users_.emplace(event.user_id, UserState{}).first;
  UserState& state = it->second;
  uint64_t old_hash = state.last_seq == 0 ? 0 : HashUserState(event.user_id, state);
  Status s = ApplyEvent(state, event, bounds_);
  if (!s.ok()) {
    if (state.last_seq == 0) users_.erase(it);
    return s;
  }
  state_hash_ += HashUserState(event.user_id, state) - old_hash;
  last_seq_ = event.seq;
  ++event_count_;
  return Status::Ok();
}

void Projection::Publish(std::string_view user_id, UserState state) {
  auto it = users_.find(user_id);
  if (it == users_.end()) {
    state_hash_ += HashUserState(user_id, state);
    users_.emplace(std::string(user_id), std::move(state));
    return;
  }
  state_hash_ += HashUserState(user_id, state) - HashUserState(user_id, it->second);
  it->second = std::move(state);
}

}  // namespace ledger
