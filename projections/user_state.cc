#include "projections/user_state.h"

#include <xxhash.h>

#include <bit>

namespace ledger {

UserState& UserState::operator=(const UserState& o) {
  if (this == &o) return *this;
  balance = o.balance;
  updated_at = o.updated_at;
  last_time = o.last_time;
  last_seq = o.last_seq;
  hash = o.hash;
  unindexed = o.unindexed;
  extras = o.extras ? std::make_unique<UserExtras>(*o.extras) : nullptr;
  return *this;
}

UserExtras& UserState::MutableExtras() {
  if (!extras) extras = std::make_unique<UserExtras>();
  return *extras;
}

bool UserState::operator==(const UserState& o) const {
  bool extras_equal = (!extras || extras->empty()) ? (!o.extras || o.extras->empty())
                                                   : (o.extras && *extras == *o.extras);
  return balance == o.balance && updated_at == o.updated_at && last_time == o.last_time &&
         last_seq == o.last_seq && extras_equal;
}

bool MovesBalance(const Event& e) {
  switch (e.kind) {
    case Kind::kTopUp:
    case Kind::kGrant:
      return e.active;
    case Kind::kUsage:
    case Kind::kRefund:
    case Kind::kAdjust:
    case Kind::kActivate:
      return true;
    case Kind::kDispute:
      return e.status == "lost";
    case Kind::kRefundRequest:
      return false;
  }
  return false;
}

Effect ComputeEffect(Amount old_balance, const Event& e, Bounds b) {
  Amount next = old_balance;
  switch (e.kind) {
    case Kind::kTopUp:
    case Kind::kGrant:
      if (e.active) {
        next = Clamp(old_balance + e.amount, b);
        if (e.has_ceiling && next > e.ceiling) next = e.ceiling;
      }
      break;
    case Kind::kActivate:
    case Kind::kUsage:
    case Kind::kRefund:
      next = Clamp(old_balance + e.amount, b);
      break;
    case Kind::kDispute:
      if (e.status == "lost") next = Clamp(old_balance + e.amount, b);
      break;
    case Kind::kAdjust:
      next = Clamp(e.running_balance, b);  // the target, recorded as the running balance
      break;
    case Kind::kRefundRequest:
      break;
  }
  return Effect{next - old_balance, next};
}

Status ApplyEvent(UserState& s, const Event& e, Bounds b) {
  if (e.prev_user_seq != s.last_seq) {
    // Each event names the user's previous one; the history walks these links.
    return Status::Error(
        "seq " + std::to_string(e.seq) + ": names seq " + std::to_string(e.prev_user_seq) +
        " as the user's previous event, but that is seq " + std::to_string(s.last_seq));
  }
  Effect effect = ComputeEffect(s.balance, e, b);
  if (effect.applied != e.applied || effect.new_balance != e.running_balance) {
    return Status::Error(
        "seq " + std::to_string(e.seq) + ": recorded applied " + std::to_string(e.applied) +
        " / running balance " + std::to_string(e.running_balance) + " but replay computes " +
        std::to_string(effect.applied) + " / " + std::to_string(effect.new_balance));
  }
  s.balance = effect.new_balance;
  s.last_time = e.time_us;
  s.last_seq = e.seq;
  if (MovesBalance(e)) s.updated_at = e.time_us;

  switch (e.kind) {
    case Kind::kTopUp:
    case Kind::kGrant:
      if (!e.active) s.MutableExtras().pending[e.seq] = e.amount;
      break;
    case Kind::kActivate:
      if (s.extras) s.extras->pending.erase(e.ref_seq);
      break;
    case Kind::kRefund: {
      auto& x = s.MutableExtras();
      x.refunded[e.ref_seq] += -e.amount;
      x.open_requests.erase(e.ref_seq);
      break;
    }
    case Kind::kRefundRequest:
      s.MutableExtras().open_requests[e.ref_seq] = e.seq;
      break;
    case Kind::kDispute: {
      auto& x = s.MutableExtras();
      if (IsOpenDisputeStatus(e.status)) {
        x.open_disputes[e.key] = DisputeState{e.ref_seq, -e.amount, e.status, e.seq};
      } else {
        x.open_disputes.erase(e.key);
      }
      if (e.status == "lost") x.refunded[e.ref_seq] += -e.amount;
      break;
    }
    case Kind::kUsage:
    case Kind::kAdjust:
      break;
  }
  if (s.extras && s.extras->empty()) s.extras.reset();
  return Status::Ok();
}

namespace {
void Put64(std::string& buf, uint64_t v) {
  for (int i = 0; i < 8; ++i) buf.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void PutStr(std::string& buf, std::string_view s) {
  Put64(buf, s.size());
  buf.append(s);
}

uint64_t HashExtras(const UserExtras& x) {
  std::string buf;
  Put64(buf, x.pending.size());
  for (auto& [k, v] : x.pending) Put64(buf, k), Put64(buf, static_cast<uint64_t>(v));
  Put64(buf, x.refunded.size());
  for (auto& [k, v] : x.refunded) Put64(buf, k), Put64(buf, static_cast<uint64_t>(v));
  Put64(buf, x.open_requests.size());
  for (auto& [k, v] : x.open_requests) Put64(buf, k), Put64(buf, v);
  Put64(buf, x.open_disputes.size());
  for (auto& [k, d] : x.open_disputes) {
    PutStr(buf, k);
    Put64(buf, d.payment_seq);
    Put64(buf, static_cast<uint64_t>(d.amount));
    PutStr(buf, d.status);
    Put64(buf, d.seq);
  }
  return XXH3_64bits(buf.data(), buf.size());
}
}  // namespace

uint64_t HashUserState(uint64_t user_id_hash, const UserState& s) {
  // Canonical form: the fixed fields (little-endian) hashed with the user id's
  // hash as seed; the rare extras contribute their own hash.
  uint64_t fields[5] = {static_cast<uint64_t>(s.balance), static_cast<uint64_t>(s.updated_at),
                        static_cast<uint64_t>(s.last_time), s.last_seq,
                        s.extras ? HashExtras(*s.extras) : 0};
  static_assert(std::endian::native == std::endian::little, "canonical form is little-endian");
  return XXH3_64bits_withSeed(fields, sizeof fields, user_id_hash);
}

uint64_t HashUserState(std::string_view user_id, const UserState& s) {
  return HashUserState(XXH3_64bits(user_id.data(), user_id.size()), s);
}

}  // namespace ledger
