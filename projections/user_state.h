// Per-user state of the projection, and the pure fold over it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "events/event.h"
#include "events/status.h"

namespace ledger {

// The balance range; by default PostgreSQL's `int`, as in the system we replace.
struct Bounds {
  Amount min = -2147483648LL;
  Amount max = 2147483647LL;
};

struct DisputeState {
  Seq payment_seq = 0;
  Amount amount = 0;  // positive: the disputed amount
  std::string status;
  Seq seq = 0;  // the event that set this status
  bool operator==(const DisputeState&) const = default;
};

// The small, rare parts of a user's state; most users have none, so they live
// behind one pointer to keep the per-user footprint small.
struct UserExtras {
  std::map<Seq, Amount> pending;                      // pending top-up/grant seq -> amount
  std::map<Seq, Amount> refunded;                     // top-up seq -> refunds + lost disputes
  std::map<Seq, Seq> open_requests;                   // top-up seq -> refund_request seq
  std::map<std::string, DisputeState> open_disputes;  // dispute key -> state
  bool empty() const {
    return pending.empty() && refunded.empty() && open_requests.empty() && open_disputes.empty();
  }
  bool operator==(const UserExtras&) const = default;
};

struct UserState {
  Amount balance = 0;
  TimeUs updated_at = 0;  // time of the last balance change; 0 = never
  TimeUs last_time = 0;   // time of the user's last event (times never go backwards)
  Seq last_seq = 0;       // the user's last event
  std::unique_ptr<UserExtras> extras;
  // HashUserState of this state as published (kept by Projection, so the
  // old hash need not be recomputed on every change). Not part of equality.
  uint64_t hash = 0;
  // The writer's bookkeeping for the sparse `by_user` index: the user's events
  // appended since the last one indexed. Not part of the state (not hashed,
  // compared or snapshotted; 0 after a restart, which only delays the next
  // index entry).
  uint32_t unindexed = 0;

  UserState() = default;
  UserState(const UserState& o) { *this = o; }
  UserState& operator=(const UserState& o);
  UserState(UserState&&) noexcept = default;
  UserState& operator=(UserState&&) noexcept = default;

  UserExtras& MutableExtras();
  bool operator==(const UserState& o) const;
};

inline Amount Clamp(Amount v, Bounds b) { return v < b.min ? b.min : (v > b.max ? b.max : v); }

// What an event does to a balance: the rules of SPEC §1-2 in one place.
struct Effect {
  Amount applied = 0;
  Amount new_balance = 0;
};
Effect ComputeEffect(Amount old_balance, const Event& event, Bounds bounds);

// True for events that change (or try to change) the balance; these set
// `updated_at`, which the monthly refill reads.
bool MovesBalance(const Event& event);

// The fold: applies `event` to `state`. Pure. Checks that the event's recorded
// `applied` and `running_balance` agree with the recomputed effect; on a
// mismatch returns an error naming the seq and leaves `state` unchanged.
Status ApplyEvent(UserState& state, const Event& event, Bounds bounds);

// XXH3 of the user's canonical state; the projection's state hash is the sum
// of these over all users (mod 2^64), so it is order-independent and O(1) to
// keep up to date.
uint64_t HashUserState(std::string_view user_id, const UserState& state);
// The same, given UserIdHash(user_id) (projections/projection.h).
uint64_t HashUserState(uint64_t user_id_hash, const UserState& state);

}  // namespace ledger
