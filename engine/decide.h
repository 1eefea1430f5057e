// decide: command + current state + facts from the indexes -> event or
// rejection. Pure: no clock, no I/O, no randomness. The writer gathers the
// facts (engine/writer.cc) and supplies time and seq in the context.
#pragma once

#include <optional>
#include <string>

#include "engine/command.h"
#include "engine/outcome.h"
#include "engine/price_table.h"
#include "projections/user_state.h"

namespace ledger {

// An event found through an index, with its activation when it was pending
// and has been activated since.
struct StoredTx {
  Event event;
  std::optional<Event> activation;
};

struct Facts {
  std::optional<StoredTx> same_key;          // what (user_id, key) names already
  std::optional<StoredTx> payment;           // the top-up named by payment_key
  std::optional<std::string> payment_owner;  // top_up: the user whose payment id this is
  bool new_key_taken = false;                // activate: new_key names another event

  // Empties the facts for the next command. The writer keeps one Facts
  // for every command it decides: GCC's std::optional zero-fills all of its
  // storage when default-constructed, ~1.6 KB here, which as a new Facts per
  // command took ~7% of the writer's time in Cap'n Proto batches; an empty
  // optional's reset is one test.
  void Clear() {
    same_key.reset();
    payment.reset();
    payment_owner.reset();
    new_key_taken = false;
  }
};

struct DecideContext {
  Seq seq = 0;         // the seq the event will take
  TimeUs time_us = 0;  // the event's time (never before the user's last)
  Bounds bounds;
  Amount refund_tolerance = 0;
  const PriceTable* prices = nullptr;
};

struct Decision {
  std::optional<Event> event;  // set: append this event
  Outcome outcome;             // the answer (for an event, filled from it)
};

// REQUIRES: for refund/refund_request/dispute, `command.user_id` is the
// top-up's user (the writer resolves it); `command.key` is set (generated when
// the client gave none).
// The command is consumed: an appended event takes its key and metadata
// (moved, not copied; the writer's commands end here).
Decision Decide(const UserState& state, Command&& command, const Facts& facts,
                const DecideContext& ctx);
// The same for a command the caller keeps (decides a copy).
Decision Decide(const UserState& state, const Command& command, const Facts& facts,
                const DecideContext& ctx);

// The monthly refill (SPEC §2): a grant topping the balance up to `target`,
// due the first time a user is touched in a calendar month later than the
// month of their last balance change.
bool RefillDue(const UserState& state, TimeUs now);
std::string RefillKey(TimeUs now);
Event DecideRefill(const UserState& state, std::string_view user_id, Amount target,
                   const DecideContext& ctx);

// Fills an outcome from an event (the answer for an appended event, or the
// original's result for a duplicate).
Outcome OutcomeFromEvent(const Event& event);

}  // namespace ledger
