// Randomized model test: thousands of random commands (every kind, many that
// must be rejected) from several threads, checked against a small
// single-threaded reference model of SPEC §2 applied in the order the writer
// processed them. Every outcome, every running balance and the final
// balances must agree; a reopen (full replay) must agree too.
#include <gtest/gtest.h>

#include <future>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "tests/test_support.h"

namespace ledger::testing {
namespace {

constexpr Amount kMin = -2147483648LL, kMax = 2147483647LL;
Amount ClampI(Amount v) { return std::max(kMin, std::min(kMax, v)); }

// The reference model: plain maps, no indexes, no sharing with the engine.
class Model {
 public:
  struct Tx {
    Kind kind;
    Amount amount;  // signed
    std::string metadata;
    bool active;
    bool has_ceiling;
    Amount ceiling;
    std::string payment_key, status;
    Seq seq;
    Amount applied, running;
  };
  struct Result {
    ErrorCode code = ErrorCode::kNone;
    Seq seq = 0;
    Amount balance = 0, applied = 0;
    bool duplicate = false, already_active = false;
  };

  Result Run(Command c) {
    bool by_payment =
        c.kind == Kind::kRefund || c.kind == Kind::kRefundRequest || c.kind == Kind::kDispute;
    const Tx* topup = nullptr;
    if (by_payment) {
      auto p = payments_.find(c.payment_key);
      if (p == payments_.end() || (!c.user_id.empty() && p->second != c.user_id)) {
        return Err(ErrorCode::kNotFound);
      }
      c.user_id = p->second;
      topup = &keys_.at({c.user_id, c.payment_key});
      if (pending_.count(topup->seq)) return Err(ErrorCode::kNotFound);
    }
    Amount& bal = balances_[c.user_id];
    if (c.key.empty()) c.key = "ledger:" + std::to_string(seq_ + 1);
    auto existing = keys_.find({c.user_id, c.key});
    const Tx* same = existing == keys_.end() ? nullptr : &existing->second;
    auto dup = [&](Amount amount) -> std::optional<Result> {
      if (!same) return std::nullopt;
      bool eq = same->kind == c.kind && same->metadata == c.metadata;
      if (c.kind == Kind::kAdjust) {
        eq = eq && same->running == c.balance;
      } else {
        eq = eq && same->amount == amount;
      }
      if (c.kind == Kind::kTopUp || c.kind == Kind::kGrant) {
        eq = eq && same->active == !c.pending && same->has_ceiling == c.has_ceiling &&
             same->ceiling == (c.has_ceiling ? c.ceiling : 0);
      }
      if (by_payment) eq = eq && same->payment_key == c.payment_key;
      if (!eq) return Err(ErrorCode::kConflict);
      return Result{ErrorCode::kNone, same->seq, same->running, same->applied, true, false};
    };
    Tx tx{c.kind, 0, c.metadata, true, false, 0, c.payment_key, c.status, 0, 0, 0};
    switch (c.kind) {
      case Kind::kTopUp:
      case Kind::kGrant: {
        if (auto d = dup(c.amount)) return *d;
        if (c.kind == Kind::kTopUp && payments_.count(c.key) && payments_[c.key] != c.user_id) {
          return Err(ErrorCode::kConflict);
        }
        if (c.has_ceiling && bal >= c.ceiling) return Err(ErrorCode::kCeilingReached);
        tx.amount = c.amount;
        tx.active = !c.pending;
        tx.has_ceiling = c.has_ceiling;
        tx.ceiling = c.has_ceiling ? c.ceiling : 0;
        Amount next = bal;
        if (!c.pending) {
          next = ClampI(bal + c.amount);
          if (c.has_ceiling) next = std::min(next, c.ceiling);
        }
        Result r = Append(c, tx, next);
        if (c.pending) pending_[r.seq] = c.amount;
        if (c.kind == Kind::kTopUp) payments_[c.key] = c.user_id;
        return r;
      }
      case Kind::kUsage: {
        if (c.amount == 0) return Result{ErrorCode::kNone, 0, bal, 0, false, false};
        if (auto d = dup(-c.amount)) return *d;
        if (!c.allow_negative && bal - c.amount < 0) return Err(ErrorCode::kInsufficientBalance);
        tx.amount = -c.amount;
        return Append(c, tx, ClampI(bal - c.amount));
      }
      case Kind::kRefund: {
        if (auto d = dup(-c.amount)) return *d;
        if (refunded_[topup->seq] + c.amount > topup->amount) {
          return Err(ErrorCode::kRefundExceedsTopup);
        }
        Seq pay = topup->seq;
        tx.amount = -c.amount;
        Result r = Append(c, tx, ClampI(bal - c.amount));
        refunded_[pay] += c.amount;
        open_requests_.erase(pay);
        return r;
      }
      case Kind::kRefundRequest: {
        Amount amount = topup->amount;
        if (auto d = dup(-amount)) return *d;
        if (open_requests_.count(topup->seq)) return Err(ErrorCode::kConflict);
        if (refunded_[topup->seq] + amount > topup->amount) {
          return Err(ErrorCode::kRefundExceedsTopup);
        }
        Seq pay = topup->seq;
        tx.amount = -amount;
        Result r = Append(c, tx, bal);
        open_requests_.insert(pay);
        return r;
      }
      case Kind::kDispute: {
        if (same) {
          bool same_dispute = same->kind == Kind::kDispute && same->payment_key == c.payment_key &&
                              same->amount == -c.amount;
          if (!same_dispute || (same->status == c.status && same->metadata != c.metadata)) {
            return Err(ErrorCode::kConflict);
          }
          if (same->status == c.status) {
            return Result{ErrorCode::kNone, same->seq, same->running, same->applied, true, false};
          }
          if (!IsOpenDisputeStatus(same->status)) return Err(ErrorCode::kConflict);
        }
        bool lost = c.status == "lost";
        if (lost && refunded_[topup->seq] + c.amount > topup->amount) {
          return Err(ErrorCode::kRefundExceedsTopup);
        }
        Seq pay = topup->seq;
        tx.amount = -c.amount;
        Result r = Append(c, tx, lost ? ClampI(bal - c.amount) : bal);
        if (lost) refunded_[pay] += c.amount;
        return r;
      }
      case Kind::kActivate: {
        if (!same || (same->kind != Kind::kTopUp && same->kind != Kind::kGrant)) {
          return Err(ErrorCode::kNotFound);
        }
        Tx target = *same;
        if (!pending_.count(target.seq)) {
          const Tx& shown = activations_.count(target.seq) ? activations_[target.seq] : target;
          return Result{ErrorCode::kNone, shown.seq, shown.running, shown.applied, false, true};
        }
        std::string new_key = c.new_key == c.key ? "" : c.new_key;
        if (!new_key.empty() && (keys_.count({c.user_id, new_key}) ||
                                 (target.kind == Kind::kTopUp && payments_.count(new_key)))) {
          return Err(ErrorCode::kConflict);
        }
        Amount next = ClampI(bal + target.amount);
        Seq seq = ++seq_;
        Amount applied = next - bal;
        bal = next;
        pending_.erase(target.seq);
        activations_[target.seq] =
            Tx{Kind::kActivate, target.amount, "", true, false, 0, "", "", seq, applied, next};
        if (!new_key.empty()) {
          keys_[{c.user_id, new_key}] = target;
          if (target.kind == Kind::kTopUp) payments_[new_key] = c.user_id;
        }
        return Result{ErrorCode::kNone, seq, next, applied, false, false};
      }
      case Kind::kAdjust: {
        if (auto d = dup(0)) return *d;
        tx.amount = c.balance - bal;
        return Append(c, tx, c.balance);
      }
    }
    return Err(ErrorCode::kInternal);
  }

  const std::map<std::string, Amount>& balances() const { return balances_; }
  Seq last_seq() const { return seq_; }

 private:
  static Result Err(ErrorCode code) {
    Result r;
    r.code = code;
    return r;
  }
  Result Append(const Command& c, Tx tx, Amount next) {
    Amount& bal = balances_[c.user_id];
    tx.seq = ++seq_;
    tx.applied = next - bal;
    tx.running = next;
    bal = next;
    keys_[{c.user_id, c.key}] = tx;
    return Result{ErrorCode::kNone, tx.seq, next, tx.applied, false, false};
  }

  Seq seq_ = 0;
  std::map<std::string, Amount> balances_;
  std::map<std::pair<std::string, std::string>, Tx> keys_;
  std::map<std::string, std::string> payments_;  // payment key -> user
  std::map<Seq, Amount> pending_;
  std::map<Seq, Tx> activations_;  // pending seq -> its activation
  std::map<Seq, Amount> refunded_;
  std::set<Seq> open_requests_;
};

Command RandomCommand(std::mt19937_64& rng) {
  auto pick = [&](int n) { return static_cast<int>(rng() % n); };
  static const char* kUsers[] = {"ann", "bob", "cy", "dee", "ed"};
  static const char* kStatuses[] = {"needs_response", "under_review", "won", "lost"};
  static const char* kMeta[] = {"{}", R"({"a":1})", R"({"graph_exec_id":"g"})"};
  Command c;
  c.user_id = kUsers[pick(5)];
  c.key = pick(2) == 0 ? "" : "k" + std::to_string(pick(300));
  c.metadata = kMeta[pick(3)];
  c.has_amount = true;
  static const Amount kAmounts[] = {1, 5, 50, 100, 500, 1000, 2147483647};
  c.amount = kAmounts[pick(7)];
  std::string pay = "pay" + std::to_string(pick(40));
  switch (pick(9)) {
    case 0:
    case 1:
      c.kind = Kind::kTopUp;
      c.key = pay;
      c.pending = pick(5) == 0;
      if (!c.pending && pick(6) == 0) {
        c.has_ceiling = true;
        c.ceiling = 1000;
      }
      break;
    case 2:
      c.kind = Kind::kGrant;
      c.pending = pick(6) == 0;
      break;
    case 3:
    case 4:
      c.kind = Kind::kUsage;
      c.amount = pick(10) == 0 ? 0 : c.amount;
      c.allow_negative = pick(4) == 0;
      break;
    case 5:
      c.kind = Kind::kRefund;
      c.payment_key = pay;
      c.user_id = pick(3) == 0 ? c.user_id : "";
      break;
    case 6:
      c.kind = pick(2) ? Kind::kRefundRequest : Kind::kDispute;
      c.payment_key = pay;
      c.user_id = "";
      if (c.kind == Kind::kRefundRequest) {
        c.has_amount = false;
        c.amount = 0;
        c.reason = "r";
      } else {
        c.key = "dp" + std::to_string(pick(4));
        c.amount = kAmounts[pick(4)];
        c.status = kStatuses[pick(4)];
        c.has_status = true;
        c.metadata = "{}";
      }
      break;
    case 7:
      c.kind = Kind::kActivate;
      c.key = pick(2) ? pay : "k" + std::to_string(pick(12));
      c.has_amount = false;
      c.amount = 0;
      c.new_key = pick(3) == 0 ? "renamed" + std::to_string(pick(3)) : "";
      c.has_metadata = pick(2) == 0;
      if (!c.has_metadata) c.metadata = "{}";
      break;
    default:
      c.kind = Kind::kAdjust;
      c.has_amount = false;
      c.has_balance = true;
      c.balance = pick(8) == 0 ? kMin + 10 : static_cast<Amount>(pick(3000));
      c.metadata = R"({"reason":"fix"})";
      break;
  }
  return c;
}

// Random commands from `threads` threads, each submitting `submissions`
// submissions of `per_submission` commands and waiting for each answer,
// checked command by command against the reference model in the order the
// writer processed them, then against a full replay.
void RunAgainstTheModel(int threads_n, int submissions, int per_submission) {
  TempDir dir;
  auto ledger = OpenLedger(dir.path());
  struct Processed {
    Command command;
    Outcome outcome;
  };
  std::vector<Processed> processed;  // in the writer's processing order
  std::mutex mu;
  std::vector<std::thread> threads;
  for (int t = 0; t < threads_n; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(1234 + t);
      Command last = RandomCommand(rng);
      for (int i = 0; i < submissions; ++i) {
        std::vector<Command> sub;
        for (int j = 0; j < per_submission; ++j) {
          // Sometimes a client retries its last command exactly (idempotency).
          Command c = rng() % 6 == 0 ? last : RandomCommand(rng);
          last = c;
          sub.push_back(std::move(c));
        }
        std::promise<void> done;
        ledger->Submit(
            sub,
            [&, sub](std::vector<Outcome> outs) {
              // On the thread that committed the group (the writer, or this
              // one alone), groups one at a time, in order, and a group's
              // submissions in order.
              std::lock_guard<std::mutex> lock(mu);
              for (size_t j = 0; j < sub.size(); ++j) {
                processed.push_back({sub[j], std::move(outs[j])});
              }
              done.set_value();
            },
            /*caller_free=*/true);  // it waits for the answer
        done.get_future().wait();
      }
    });
  }
  for (auto& th : threads) th.join();
  ASSERT_EQ(processed.size(), size_t(threads_n) * submissions * per_submission);

  Model model;
  size_t accepted = 0, rejected = 0, duplicates = 0;
  std::map<std::string, int> rejections;
  for (size_t i = 0; i < processed.size(); ++i) {
    const auto& [c, o] = processed[i];
    Model::Result want = model.Run(c);
    std::string what = "#" + std::to_string(i) + " " + std::string(KindName(c.kind)) +
                       " user=" + c.user_id + " key=" + c.key + " pay=" + c.payment_key +
                       " amount=" + std::to_string(c.amount) + ": " + o.message;
    ASSERT_EQ(o.code, want.code) << what;
    if (!o.ok()) {
      ++rejected;
      ++rejections[std::string(KindName(c.kind)) + "/" + std::string(ErrorCodeName(o.code))];
      continue;
    }
    ++accepted;
    duplicates += o.duplicate;
    ASSERT_EQ(o.seq, want.seq) << what;
    ASSERT_EQ(o.balance, want.balance) << what;
    ASSERT_EQ(o.applied, want.applied) << what;
    ASSERT_EQ(o.duplicate, want.duplicate) << what;
    ASSERT_EQ(o.already_active, want.already_active) << what;
  }
  for (const auto& [what, n] : rejections) std::printf("  rejected %-32s %d\n", what.c_str(), n);
  // The mix must exercise both sides.
  EXPECT_GT(accepted, 1000u);
  EXPECT_GT(rejected, 300u);
  EXPECT_GT(duplicates, 50u);
  EXPECT_EQ(ledger->Stats().last_seq, model.last_seq());
  for (const auto& [user, balance] : model.balances()) {
    EXPECT_EQ(ledger->PeekBalance(user).balance, balance) << user;
  }
  // A full replay agrees with the live projection.
  uint64_t hash = ledger->StateHash();
  ledger.reset();
  auto reopened = OpenLedger(dir.path());
  EXPECT_EQ(reopened->StateHash(), hash);
  for (const auto& [user, balance] : model.balances()) {
    EXPECT_EQ(reopened->PeekBalance(user).balance, balance) << user;
  }
}

TEST(ModelTest, RandomCommandsFromManyThreadsMatchTheReferenceModel) {
  RunAgainstTheModel(/*threads=*/6, /*submissions=*/700, /*per_submission=*/1);
}

// Batches: submissions of 300 are decided with their users' states asked
// ahead (the writer's prefetching), and groups of 256 commands or more are
// handed on, so later ones are decided on top of states still in flight.
TEST(ModelTest, RandomBatchesFromManyThreadsMatchTheReferenceModel) {
  RunAgainstTheModel(/*threads=*/4, /*submissions=*/8, /*per_submission=*/300);
}

}  // namespace
}  // namespace ledger::testing
