#include "engine/decide.h"

#include "engine/time_format.h"

namespace ledger {

namespace {

// The fields every new event takes from its command.
// The command is consumed: its key and metadata move into the event (a
// usage's metadata, ~50 bytes, cost the writer a malloc, a copy and a free
// per event when copied).
void InitEvent(Command& c, const DecideContext& ctx, Event& e) {
  e.seq = ctx.seq;
  e.time_us = ctx.time_us;
  e.user_id = c.user_id;
  e.kind = c.kind;
  e.key = std::move(c.key);
  e.metadata = std::move(c.metadata);
}

Decision Reject(ErrorCode code, std::string message, std::string field = {}) {
  return Decision{std::nullopt, Outcome::Error(code, std::move(message), std::move(field))};
}

// Appends a new event for `c`: `fill` sets what the command's kind adds to
// the fields every event takes from its command, then applied and
// running_balance come from the shared balance rule and the answer from the
// event. The event is built inside the decision, which callers return as it
// is (copy elision): an Event is ~450 bytes of fields and strings, and each
// move of it or of the decision costs as much as the balance rule.
template <typename Fill>
Decision Accept(Command& c, const DecideContext& ctx, const UserState& state, Fill&& fill) {
  // The event constructed in place: a default-constructed std::optional
  // (GCC's) zero-fills its storage before emplace would construct in it.
  Decision d{std::optional<Event>(std::in_place), Outcome()};
  Event& e = *d.event;
  InitEvent(c, ctx, e);
  fill(e);
  Effect effect = ComputeEffect(state.balance, e, ctx.bounds);
  e.applied = effect.applied;
  e.running_balance = effect.new_balance;
  d.outcome = OutcomeFromEvent(e);
  return d;
}

// Nothing appended, success: skipped refunds, zero-cost usage, ...
Decision NoOp(const Command& c, const UserState& state, const DecideContext& ctx) {
  Outcome o;
  o.user_id = c.user_id;
  o.key = c.key;
  o.kind = c.kind;
  o.balance = state.balance;
  o.time_us = ctx.time_us;
  return Decision{std::nullopt, std::move(o)};
}

// Is the command the same request as the event its key already names?
bool SameRequest(const Command& c, const Event& e, Amount amount) {
  if (c.kind != e.kind || c.metadata != e.metadata) return false;
  switch (c.kind) {
    case Kind::kAdjust:
      return e.running_balance == c.balance;
    case Kind::kTopUp:
    case Kind::kGrant:
      return e.amount == amount && e.active == !c.pending && e.has_ceiling == c.has_ceiling &&
             e.ceiling == (c.has_ceiling ? c.ceiling : 0);
    case Kind::kRefund:
    case Kind::kRefundRequest:
    case Kind::kDispute:
      return e.amount == amount && e.ref_key == c.payment_key;
    default:
      return e.amount == amount;
  }
}

// Idempotency (SPEC §1): the original's result, or a conflict.
std::optional<Decision> CheckKey(const Command& c, const Facts& f, Amount amount) {
  if (!f.same_key) return std::nullopt;
  const Event& orig = f.same_key->event;
  if (!SameRequest(c, orig, amount)) {
    return Reject(ErrorCode::kConflict,
                  "key '" + c.key + "' already names a different " +
                      std::string(KindName(orig.kind)) + " (seq " + std::to_string(orig.seq) + ")",
                  "key");
  }
  Outcome o = OutcomeFromEvent(orig);
  o.duplicate = true;
  return Decision{std::nullopt, std::move(o)};
}

Amount Refunded(const UserState& s, Seq payment_seq) {
  if (!s.extras) return 0;
  auto it = s.extras->refunded.find(payment_seq);
  return it == s.extras->refunded.end() ? 0 : it->second;
}

bool IsPending(const UserState& s, Seq seq) { return s.extras && s.extras->pending.count(seq) > 0; }

// The top-up a refund, refund request or dispute names, if it can be used.
std::optional<Decision> CheckPayment(const Command& c, const UserState& s, const Facts& f) {
  if (!f.payment || f.payment->event.kind != Kind::kTopUp) {
    return Reject(ErrorCode::kNotFound, "no top-up with payment_key '" + c.payment_key + "'",
                  "payment_key");
  }
  if (IsPending(s, f.payment->event.seq)) {
    return Reject(ErrorCode::kNotFound, "top-up '" + c.payment_key + "' is pending (not active)",
                  "payment_key");
  }
  return std::nullopt;
}

// The sum of refunds and lost disputes against one top-up may not exceed its
// amount (SPEC §2): the one place that rule lives.
std::optional<Decision> CheckWithinTopUp(const UserState& s, const Command& c, const Event& topup,
                                         Amount amount) {
  Amount refunded = Refunded(s, topup.seq);
  if (refunded + amount <= topup.amount) return std::nullopt;
  return Reject(ErrorCode::kRefundExceedsTopup,
                std::to_string(amount) + " more against top-up '" + c.payment_key +
                    "' would exceed its amount " + std::to_string(topup.amount) + " (" +
                    std::to_string(refunded) + " already refunded or lost in disputes)",
                "amount");
}

// An event that names a top-up (refund, refund request, dispute): moves
// `amount` out of the balance when it applies.
void SetPayment(const Command& c, const Event& topup, Amount amount, Event& e) {
  e.amount = -amount;
  e.ref_seq = topup.seq;
  e.ref_key = c.payment_key;
}

Decision DecideTopUpOrGrant(const UserState& s, Command& c, const Facts& f,
                            const DecideContext& ctx) {
  if (auto d = CheckKey(c, f, c.amount)) return std::move(*d);
  if (c.kind == Kind::kTopUp && f.payment_owner && *f.payment_owner != c.user_id) {
    return Reject(ErrorCode::kConflict,
                  "payment id '" + c.key + "' is already used by another user's top-up", "key");
  }
  if (c.has_ceiling && s.balance >= c.ceiling) {
    return Reject(ErrorCode::kCeilingReached,
                  "balance " + std::to_string(s.balance) + " is at or above the ceiling " +
                      std::to_string(c.ceiling),
                  "ceiling");
  }
  return Accept(c, ctx, s, [&](Event& e) {
    e.amount = c.amount;
    e.active = !c.pending;
    e.has_ceiling = c.has_ceiling;
    e.ceiling = c.has_ceiling ? c.ceiling : 0;
  });
}

Decision DecideUsage(const UserState& s, Command& c, const Facts& f, const DecideContext& ctx) {
  Amount amount = c.amount;
  int32_t rule = -1;
  bool priced = !c.block_id.empty();
  if (priced) {
    if (ctx.prices == nullptr) {
      return Reject(ErrorCode::kInvalidRequest,
                    "priced usage needs a price table (server started without --prices)",
                    "block_id");
    }
    PriceTable::Match m = ctx.prices->Price(c.block_id, c.inputs);
    amount = m.cost;
    rule = m.rule_index;
  }
  if (amount == 0) {
    Decision d = NoOp(c, s, ctx);
    d.outcome.priced = priced;
    d.outcome.rule_index = rule;
    return d;
  }
  if (auto d = CheckKey(c, f, -amount)) {
    d->outcome.priced = priced;
    d->outcome.rule_index = f.same_key->event.rule_index;
    return std::move(*d);
  }
  if (!c.allow_negative && s.balance - amount < 0) {
    Decision d =
        Reject(ErrorCode::kInsufficientBalance,
               "balance " + std::to_string(s.balance) + " is less than " + std::to_string(amount));
    d.outcome.balance = s.balance;
    d.outcome.amount = amount;
    return d;
  }
  // (The answer is marked priced from the event's block_id.)
  return Accept(c, ctx, s, [&](Event& e) {
    e.amount = -amount;
    e.allow_negative = c.allow_negative;
    e.block_id = c.block_id;
    e.rule_index = rule;
  });
}

Decision DecideRefund(const UserState& s, Command& c, const Facts& f, const DecideContext& ctx) {
  if (c.has_status && c.status != "succeeded") {
    Decision d = NoOp(c, s, ctx);
    d.outcome.amount = -c.amount;
    d.outcome.skipped = true;
    return d;
  }
  if (auto d = CheckPayment(c, s, f)) return std::move(*d);
  if (auto d = CheckKey(c, f, -c.amount)) return std::move(*d);
  const Event& topup = f.payment->event;
  if (auto d = CheckWithinTopUp(s, c, topup, c.amount)) return std::move(*d);
  return Accept(c, ctx, s, [&](Event& e) { SetPayment(c, topup, c.amount, e); });
}

Decision DecideRefundRequest(const UserState& s, Command& c, const Facts& f,
                             const DecideContext& ctx) {
  if (auto d = CheckPayment(c, s, f)) return std::move(*d);
  const Event& topup = f.payment->event;
  Amount amount = c.has_amount ? c.amount : topup.amount;
  if (auto d = CheckKey(c, f, -amount)) return std::move(*d);
  if (s.extras && s.extras->open_requests.count(topup.seq)) {
    return Reject(ErrorCode::kConflict,
                  "top-up '" + c.payment_key + "' already has a pending refund request (seq " +
                      std::to_string(s.extras->open_requests.at(topup.seq)) + ")",
                  "payment_key");
  }
  if (auto d = CheckWithinTopUp(s, c, topup, amount)) return std::move(*d);
  return Accept(c, ctx, s, [&](Event& e) {
    SetPayment(c, topup, amount, e);
    e.reason = c.reason;
    e.decision = amount - s.balance <= ctx.refund_tolerance ? "auto_refund" : "manual_review";
  });
}

bool IsFinalDisputeStatus(std::string_view status) { return !IsOpenDisputeStatus(status); }

Decision DecideDispute(const UserState& s, Command& c, const Facts& f, const DecideContext& ctx) {
  if (auto d = CheckPayment(c, s, f)) return std::move(*d);
  const Event& topup = f.payment->event;
  if (f.same_key) {
    // The key names the dispute across its life: a new status is a change,
    // the same status again a duplicate, anything else a conflict.
    const Event& last = f.same_key->event;
    bool same_dispute =
        last.kind == Kind::kDispute && last.ref_key == c.payment_key && last.amount == -c.amount;
    if (!same_dispute || (last.status == c.status && last.metadata != c.metadata)) {
      return Reject(ErrorCode::kConflict,
                    "key '" + c.key + "' already names a different " +
                        std::string(KindName(last.kind)) + " (seq " + std::to_string(last.seq) +
                        ")",
                    "key");
    }
    if (last.status == c.status) {
      Outcome o = OutcomeFromEvent(last);
      o.duplicate = true;
      o.needs_evidence = IsOpenDisputeStatus(last.status);
      o.evidence_payment_seq = topup.seq;
      return Decision{std::nullopt, std::move(o)};
    }
    if (IsFinalDisputeStatus(last.status)) {
      return Reject(ErrorCode::kConflict, "dispute '" + c.key + "' is closed (" + last.status + ")",
                    "status");
    }
  }
  if (c.status == "lost") {
    if (auto d = CheckWithinTopUp(s, c, topup, c.amount)) return std::move(*d);
  }
  Decision d = Accept(c, ctx, s, [&](Event& e) {
    SetPayment(c, topup, c.amount, e);
    e.status = c.status;
    if (IsOpenDisputeStatus(c.status)) {
      e.decision = s.balance - c.amount >= ctx.refund_tolerance ? "accept" : "contest";
    }
  });
  if (IsOpenDisputeStatus(c.status)) {
    d.outcome.needs_evidence = true;
    d.outcome.evidence_payment_seq = topup.seq;
  }
  return d;
}

Decision DecideActivate(const UserState& s, Command& c, const Facts& f, const DecideContext& ctx) {
  if (!f.same_key ||
      (f.same_key->event.kind != Kind::kTopUp && f.same_key->event.kind != Kind::kGrant)) {
    return Reject(ErrorCode::kNotFound, "no pending top-up or grant with key '" + c.key + "'",
                  "key");
  }
  const StoredTx& target = *f.same_key;
  if (!IsPending(s, target.event.seq)) {
    Outcome o = OutcomeFromEvent(target.activation ? *target.activation : target.event);
    o.already_active = true;
    return Decision{std::nullopt, std::move(o)};
  }
  if (!c.new_key.empty() && c.new_key != c.key && f.new_key_taken) {
    return Reject(ErrorCode::kConflict, "new_key '" + c.new_key + "' is already in use", "new_key");
  }
  return Accept(c, ctx, s, [&](Event& e) {
    // e.key and e.metadata hold the command's (moved from it).
    e.new_key = c.new_key == e.key ? std::string() : c.new_key;
    if (!c.new_key.empty()) e.key = c.new_key;
    e.ref_seq = target.event.seq;
    e.ref_key = target.event.key;
    e.amount = target.event.amount;
    if (!c.has_metadata) e.metadata = target.event.metadata;
  });
}

Decision DecideAdjust(const UserState& s, Command& c, const Facts& f, const DecideContext& ctx) {
  if (auto d = CheckKey(c, f, 0)) return std::move(*d);
  if (c.balance < ctx.bounds.min || c.balance > ctx.bounds.max) {
    return Reject(ErrorCode::kInvalidRequest,
                  "field 'balance' must be within " + std::to_string(ctx.bounds.min) + " to " +
                      std::to_string(ctx.bounds.max),
                  "balance");
  }
  return Accept(c, ctx, s, [&](Event& e) {
    e.amount = c.balance - s.balance;
    e.running_balance = c.balance;  // the target; ComputeEffect reads it
  });
}

}  // namespace

Outcome OutcomeFromEvent(const Event& e) {
  Outcome o;
  o.seq = e.seq;
  o.user_id = e.user_id;
  o.key = e.key;
  o.kind = e.kind;
  o.amount = e.amount;
  o.applied = e.applied;
  o.balance = e.running_balance;
  o.time_us = e.time_us;
  o.decision = e.decision;
  if (!e.block_id.empty()) {
    o.priced = true;
    o.rule_index = e.rule_index;
  }
  return o;
}

Decision Decide(const UserState& s, Command&& c, const Facts& f, const DecideContext& ctx) {
  switch (c.kind) {
    case Kind::kTopUp:
    case Kind::kGrant:
      return DecideTopUpOrGrant(s, c, f, ctx);
    case Kind::kUsage:
      return DecideUsage(s, c, f, ctx);
    case Kind::kRefund:
      return DecideRefund(s, c, f, ctx);
    case Kind::kRefundRequest:
      return DecideRefundRequest(s, c, f, ctx);
    case Kind::kDispute:
      return DecideDispute(s, c, f, ctx);
    case Kind::kActivate:
      return DecideActivate(s, c, f, ctx);
    case Kind::kAdjust:
      return DecideAdjust(s, c, f, ctx);
  }
  return Reject(ErrorCode::kInternal, "unknown command kind");
}

Decision Decide(const UserState& s, const Command& c, const Facts& f, const DecideContext& ctx) {
  return Decide(s, Command(c), f, ctx);
}

bool RefillDue(const UserState& s, TimeUs now) {
  return s.updated_at == 0 || MonthIndex(now) > MonthIndex(s.updated_at);
}

std::string RefillKey(TimeUs now) { return "MONTHLY-CREDIT-TOP-UP-" + MonthLabel(now); }

Event DecideRefill(const UserState& s, std::string_view user_id, Amount target,
                   const DecideContext& ctx) {
  Event e;
  e.seq = ctx.seq;
  e.time_us = ctx.time_us;
  e.user_id = std::string(user_id);
  e.kind = Kind::kGrant;
  e.key = RefillKey(ctx.time_us);
  e.amount = target > s.balance ? target - s.balance : 0;
  e.metadata = R"({"reason":"monthly refill"})";
  Effect effect = ComputeEffect(s.balance, e, ctx.bounds);
  e.applied = effect.applied;
  e.running_balance = effect.new_balance;
  return e;
}

}  // namespace ledger
