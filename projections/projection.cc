#include "projections/projection.h"

#include <xxhash.h>

namespace ledger {

uint64_t UserIdHash(std::string_view user_id) {
  return XXH3_64bits(user_id.data(), user_id.size());
}

void UserIndex::Insert(uint64_t hash, uint32_t index) {
  if ((size_ + 1) * 2 > slots_.size()) Grow();  // load factor at most 1/2
  size_t i = hash & mask_;
  while (slots_[i].index != kEmpty) i = (i + 1) & mask_;
  slots_[i] = Slot{hash, index};
  ++size_;
}

void UserIndex::Grow() {
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(old.empty() ? 1024 : old.size() * 2, Slot{});
  mask_ = slots_.size() - 1;
  for (const Slot& s : old) {
    if (s.index == kEmpty) continue;
    size_t i = s.hash & mask_;
    while (slots_[i].index != kEmpty) i = (i + 1) & mask_;
    slots_[i] = s;
  }
}

const UserState* Projection::Find(std::string_view user_id, uint64_t user_id_hash) const {
  uint32_t i = IndexOf(user_id, user_id_hash);
  return i == UserIndex::kEmpty ? nullptr : &users_[i].state;
}

UserEntry& Projection::Insert(std::string_view user_id, uint64_t hash) {
  users_.push_back(UserEntry{std::string(user_id), UserState{}});
  index_.Insert(hash, static_cast<uint32_t>(users_.size() - 1));
  return users_.back();
}

void Projection::SaveIfCapturing(size_t index) {
  if (!capturing_ || index >= capture_size_ || index < copied_upto_.load()) return;
  preimages_.try_emplace(index, users_[index].state);
}

Status Projection::Apply(const Event& event, uint64_t id_hash) {
  if (event.seq <= last_seq_) {
    return Status::Error("seq " + std::to_string(event.seq) + " does not follow seq " +
                         std::to_string(last_seq_));
  }
  uint32_t index = IndexOf(event.user_id, id_hash);
  bool fresh = index == UserIndex::kEmpty;
  UserState scratch;
  UserState& state = fresh ? scratch : users_[index].state;
  uint64_t old_hash = fresh ? 0 : state.hash;
  Status s = ApplyEvent(state, event, bounds_);
  if (!s.ok()) return s;
  state.hash = HashUserState(id_hash, state);
  state_hash_ += state.hash - old_hash;
  if (fresh) Insert(event.user_id, id_hash).state = std::move(scratch);
  last_seq_ = event.seq;
  ++event_count_;
  return Status::Ok();
}

void Projection::Publish(std::string_view user_id, uint64_t id_hash, UserState state) {
  state.hash = HashUserState(id_hash, state);
  uint32_t index = IndexOf(user_id, id_hash);
  if (index == UserIndex::kEmpty) {
    state_hash_ += state.hash;
    Insert(user_id, id_hash).state = std::move(state);
    return;
  }
  SaveIfCapturing(index);
  UserState& current = users_[index].state;
  state_hash_ += state.hash - current.hash;
  current = std::move(state);
}

void Projection::Restore(std::string user_id, UserState state) {
  uint64_t id_hash = UserIdHash(user_id);
  state.hash = HashUserState(id_hash, state);
  state_hash_ += state.hash;
  Insert(user_id, id_hash).state = std::move(state);
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
