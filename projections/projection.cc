#include "projections/projection.h"

#include <xxhash.h>

namespace ledger {

size_t StringHash::operator()(std::string_view s) const noexcept {
  return static_cast<size_t>(XXH3_64bits(s.data(), s.size()));
}

const UserState* Projection::Find(std::string_view user_id) const {
  auto it = index_.find(user_id);
  return it == index_.end() ? nullptr : &users_[it->second].state;
}

UserEntry& Projection::Insert(std::string_view user_id) {
  users_.push_back(UserEntry{std::string(user_id), UserState{}});
  UserEntry& entry = users_.back();
  // The key views the entry's own string, which never moves (deque).
  index_.emplace(std::string_view(entry.user_id), static_cast<uint32_t>(users_.size() - 1));
  return entry;
}

void Projection::SaveIfCapturing(size_t index) {
  if (!capturing_ || index >= capture_size_ || index < copied_upto_.load()) return;
  preimages_.try_emplace(index, users_[index].state);
}

Status Projection::Apply(const Event& event) {
  if (event.seq <= last_seq_) {
    return Status::Error("seq " + std::to_string(event.seq) + " does not follow seq " +
                         std::to_string(last_seq_));
  }
  auto it = index_.find(std::string_view(event.user_id));
  bool fresh = it == index_.end();
  UserState scratch;
  UserState& state = fresh ? scratch : users_[it->second].state;
  uint64_t old_hash = fresh ? 0 : state.hash;
  Status s = ApplyEvent(state, event, bounds_);
  if (!s.ok()) return s;
  state.hash = HashUserState(event.user_id, state);
  state_hash_ += state.hash - old_hash;
  if (fresh) Insert(event.user_id).state = std::move(scratch);
  last_seq_ = event.seq;
  ++event_count_;
  return Status::Ok();
}

void Projection::Publish(std::string_view user_id, UserState state) {
  state.hash = HashUserState(user_id, state);
  auto it = index_.find(user_id);
  if (it == index_.end()) {
    state_hash_ += state.hash;
    Insert(user_id).state = std::move(state);
    return;
  }
  SaveIfCapturing(it->second);
  UserState& current = users_[it->second].state;
  state_hash_ += state.hash - current.hash;
  current = std::move(state);
}

void Projection::Restore(std::string user_id, UserState state) {
  state.hash = HashUserState(user_id, state);
  state_hash_ += state.hash;
  Insert(user_id).state = std::move(state);
}

void Projection::BeginCapture() {
  capturing_ = true;
  capture_size_ = users_.size();
  copied_upto_.store(0);
  preimages_.clear();
}

void Projection::CopyCaptured(size_t from, size_t to, std::vector<UserEntry>* out) const {
  for (size_t i = from; i < to && i < capture_size_; ++i) {
    auto pre = preimages_.find(i);
    out->push_back(
        UserEntry{users_[i].user_id, pre != preimages_.end() ? pre->second : users_[i].state});
  }
  copied_upto_.store(std::min(to, capture_size_));
}

void Projection::EndCapture() {
  capturing_ = false;
  capture_size_ = 0;
  preimages_.clear();
}

}  // namespace ledger
