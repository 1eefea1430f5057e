#include "engine/ledger.h"

#include <future>

#include "events/codec.h"
#include "replay/replay.h"

namespace ledger {

namespace {

constexpr const char* kFormatVersion = "ledger-log-1";

std::string BoundsText(Bounds b) { return std::to_string(b.min) + ".." + std::to_string(b.max); }

// Settings that must not change over a log's life: the record format and the
// balance bounds (replay recomputes every clamp with them).
Status CheckMeta(LogStore* store, const LedgerOptions& options, bool fresh) {
  std::string version, bounds;
  if (fresh) {
    Status s = store->PutMeta("format", kFormatVersion);
    if (!s.ok()) return s;
    return store->PutMeta("bounds", BoundsText(options.bounds));
  }
  if (!store->GetMeta("format", &version).ok()) version = kFormatVersion;
  if (version != kFormatVersion) {
    return Status::Error("data directory has log format '" + version + "', this build reads '" +
                         kFormatVersion + "'");
  }
  if (store->GetMeta("bounds", &bounds).ok() && bounds != BoundsText(options.bounds)) {
    return Status::Error("data directory was written with balance bounds " + bounds + ", not " +
                         BoundsText(options.bounds));
  }
  return Status::Ok();
}

}  // namespace

Status Ledger::Open(const LedgerOptions& options, std::unique_ptr<Ledger>* out) {
  std::unique_ptr<Ledger> ledger(new Ledger());
  ledger->options_ = options;
  ledger->projection_ = Projection(options.bounds);
  StoreOptions so;
  so.dir = options.data_dir;
  so.sync = options.sync;
  Status s = LogStore::Open(so, &ledger->store_);
  if (!s.ok()) return s;
  Seq last_seq = 0;
  uint64_t last_checksum = kGenesisChecksum;
  s = ledger->store_->LastRecord(&last_seq, &last_checksum);
  if (!s.ok()) return s;
  s = CheckMeta(ledger->store_.get(), options, last_seq == 0);
  if (!s.ok()) return s;

  ReplayResult replayed;
  s = ReplayLog(ledger->store_->db(), ledger->store_->log_cf(), 0, kGenesisChecksum,
                &ledger->projection_, ReplayOptions{}, &replayed);
  if (!s.ok()) return Status::Error("recovery stopped: " + s.message());
  if (replayed.last_seq != last_seq) {
    return Status::Error("recovery reached seq " + std::to_string(replayed.last_seq) +
                         " but the log ends at seq " + std::to_string(last_seq));
  }
  EngineConfig config;
  config.bounds = options.bounds;
  config.refund_tolerance = options.refund_tolerance;
  config.monthly_refill = options.monthly_refill;
  config.prices = options.prices;
  config.queue_commands_max = options.queue_commands_max;
  ledger->writer_ = std::make_unique<Writer>(
      ledger->store_.get(), &ledger->projection_, &ledger->projection_mutex_, config, options.clock,
      &ledger->metrics_, replayed.last_seq, replayed.last_checksum);
  *out = std::move(ledger);
  return Status::Ok();
}

Ledger::~Ledger() { Close(); }

void Ledger::Close() {
  if (writer_) writer_->Stop();
}

void Ledger::FillEvidence(std::vector<Outcome>& outcomes) {
  for (Outcome& o : outcomes) {
    if (o.ok() && o.needs_evidence) {
      o.evidence_json = EvidenceJson(store_.get(), o.user_id, o.evidence_payment_seq);
    }
  }
}

void Ledger::Submit(std::vector<Command> commands, Completion done) {
  writer_->Submit(std::move(commands), [this, done = std::move(done)](std::vector<Outcome> outs) {
    FillEvidence(outs);
    done(std::move(outs));
  });
}

std::vector<Outcome> Ledger::ExecuteBatch(std::vector<Command> commands) {
  std::promise<std::vector<Outcome>> promise;
  auto future = promise.get_future();
  Submit(std::move(commands),
         [&promise](std::vector<Outcome> outs) { promise.set_value(std::move(outs)); });
  return future.get();
}

Outcome Ledger::Execute(Command command) {
  std::vector<Command> one;
  one.push_back(std::move(command));
  return std::move(ExecuteBatch(std::move(one)).front());
}

BalanceInfo Ledger::PeekBalance(std::string_view user_id) const {
  std::shared_lock<std::shared_mutex> lock(projection_mutex_);
  BalanceInfo info;
  if (const UserState* s = projection_.Find(user_id)) {
    info.exists = true;
    info.balance = s->balance;
    info.updated_at = s->updated_at;
    info.seq = s->last_seq;
  }
  return info;
}

bool Ledger::RefillDue(std::string_view user_id) const {
  if (!options_.monthly_refill) return false;
  // Only a shortcut: the writer decides again, in order.
  BalanceInfo peek = PeekBalance(user_id);
  UserState probe;
  probe.updated_at = peek.exists ? peek.updated_at : 0;
  return ledger::RefillDue(probe, options_.clock ? options_.clock() : SystemClockUs());
}

BalanceInfo Ledger::Balance(std::string_view user_id) {
  if (RefillDue(user_id)) {
    // A read is a touch: let the writer append the refill first.
    Command touch;
    touch.user_id = std::string(user_id);
    touch.touch_only = true;
    Execute(std::move(touch));
  }
  return PeekBalance(user_id);
}

LedgerStats Ledger::Stats() const {
  std::shared_lock<std::shared_mutex> lock(projection_mutex_);
  LedgerStats s;
  s.events = projection_.event_count();
  s.users = projection_.user_count();
  s.last_seq = projection_.last_seq();
  s.last_snapshot_seq = last_snapshot_seq_.load();
  s.state_hash = projection_.state_hash();
  return s;
}

uint64_t Ledger::StateHash() const {
  std::shared_lock<std::shared_mutex> lock(projection_mutex_);
  return projection_.state_hash();
}

}  // namespace ledger
