#include "engine/writer.h"

#include <pthread.h>
#include <rocksdb/perf_level.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

namespace ledger {

namespace {

// Fail-stop: the projection must never run ahead of the durable log, and
// nothing may be decided on a log the writer cannot read. Recovery replays
// the log on the next start.
[[noreturn]] void FailStop(const std::string& why) {
  std::fprintf(stderr, "ledger: FATAL: %s; stopping\n", why.c_str());
  std::abort();
}

}  // namespace

TimeUs SystemClockUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Groups of at least this many commands are handed on (written by the write
// thread, synced by the sync thread) while the writer decides the next group;
// smaller ones are written and synced by the writer itself. With few commands
// in flight, overlapping only splits them across more fsyncs (measured in
// process, 16 threads x 1 command: -30%); with batches the decide work is
// worth overlapping (16 threads x 100 commands: +50-80%).
constexpr size_t kPipelineCommandsMin = 256;

// Groups handed on and not yet answered, at most: bounds the memory the
// writer may run ahead of the disk with.
constexpr size_t kInFlightMax = 4;

// Commands whose user states are asked for ahead at a time (PrefetchChunk);
// a submission of fewer is decided without.
constexpr size_t kPrefetchChunk = 16;

// Lookups that each miss the cache (a user's index slot, then the entry the
// slot names) overlap when asked for ahead instead of stalling one after
// another. Called at the start of each chunk of items [at, at +
// kPrefetchChunk) of n: `slot(j)` for the items two chunks ahead (for the
// first chunk, its own and the next), `entry(j)` for this chunk's (their
// slots asked for a chunk ago).
template <typename Slot, typename Entry>
void PrefetchChunk(size_t at, size_t n, const Slot& slot, const Entry& entry) {
  for (size_t j = at == 0 ? 0 : at + kPrefetchChunk; j < std::min(n, at + 2 * kPrefetchChunk);
       ++j) {
    slot(j);
  }
  for (size_t j = at; j < std::min(n, at + kPrefetchChunk); ++j) entry(j);
}

// A caller writes its own submission (EngineConfig::caller_writes) only after
// this many group commits in a row found no other submission waiting once
// written: one client at a time, in effect. With two or more, the
// caller's thread (an HTTP thread) would sit in the fdatasync while requests
// of its other connections wait unread; the writer overlaps those.
constexpr int kQuietGroupsForCallerWrites = 4;

// The user states a group changes, in order of first change, found by the
// user id and its hash (UserIdHash, computed once per command and shared by
// every table the command looks in: this group's, each group's in flight,
// the projection's). Open addressing with the hash in the slot, so a miss,
// the usual case in the groups in flight, costs one probe.
class GroupStates {
 public:
  struct Entry {
    std::string user_id;
    uint64_t hash = 0;
    UserState state;
  };

  // Hints for a lookup to come (PrefetchChunk): the user's first slot, then
  // (once that is in cache) the user's entry.
  void PrefetchSlot(uint64_t hash) const { index_.Prefetch(hash); }
  void PrefetchEntry(uint64_t hash) const {
    uint32_t i = index_.FirstWithHash(hash);
    if (i != UserIndex::kEmpty) __builtin_prefetch(&entries_[i]);
  }

  UserState* Find(std::string_view user_id, uint64_t hash) {
    uint32_t i = index_.Find(
        user_id, hash, [this](uint32_t at) -> std::string_view { return entries_[at].user_id; });
    return i == UserIndex::kEmpty ? nullptr : &entries_[i].state;
  }
  // REQUIRES: the user is not in the table. The reference lasts until the
  // next Add.
  UserState& Add(std::string_view user_id, uint64_t hash, UserState state) {
    index_.Insert(hash, static_cast<uint32_t>(entries_.size()));
    return entries_.emplace_back(Entry{std::string(user_id), hash, std::move(state)}).state;
  }
  std::vector<Entry>& entries() { return entries_; }
  bool empty() const { return entries_.empty(); }
  // Keeps the entries' and the index's room for the next group.
  void Clear() {
    index_.Clear([this](auto clear_run) {
      for (const Entry& e : entries_) clear_run(e.hash);
    });
    entries_.clear();
  }

 private:
  std::vector<Entry> entries_;
  UserIndex index_;
};

// What one group commit accumulates before its write.
struct Writer::Group {
  // Where a handed-on group is (under the writer's mutex): waiting for the
  // write thread, written (in RocksDB, not durable), being synced and
  // answered, done (durable, published and answered; the writer frees it).
  enum class Stage { kToWrite, kWritten, kSyncing, kDone };

  rocksdb::WriteBatch batch;
  PendingWrites pending;
  // Copies of the states this group changes; published after the write, so
  // readers never see a state that is not durable yet. Once handed on, only
  // read (the writer's StateFor and the sync thread's publishing both read
  // them) until the writer frees the group.
  GroupStates states;
  std::vector<Submission> subs;
  std::vector<std::vector<Outcome>> outcomes;
  size_t commands = 0;  // taken into the group (counted when taken from the queue)
  size_t events = 0;
  Seq last_seq = 0;  // the log's last seq and checksum once this group is written
  uint64_t checksum = 0;
  Stage stage = Stage::kToWrite;
  std::chrono::steady_clock::time_point write_start;

  // Empties the group for reuse, keeping what it allocated: the batch's
  // buffer and the maps' buckets would otherwise be grown again, copy by
  // copy, for every group.
  void Reset() {
    batch.Clear();
    pending.Clear();
    states.Clear();
    subs.clear();
    outcomes.clear();
    commands = 0;
    events = 0;
    last_seq = 0;
    checksum = 0;
    stage = Stage::kToWrite;
  }
};

// A finished group larger than this is freed rather than kept for reuse, so
// one burst of large records does not pin its memory.
constexpr size_t kReusedGroupBytesMax = 8 << 20;

Writer::Writer(LogStore* store, Projection* projection, std::shared_mutex* projection_mutex,
               EngineConfig config, Clock clock, EngineMetrics* metrics, Seq last_seq,
               uint64_t last_checksum)
    : store_(store),
      projection_(projection),
      projection_mutex_(projection_mutex),
      config_(std::move(config)),
      clock_(clock ? std::move(clock) : Clock(SystemClockUs)),
      metrics_(metrics),
      next_seq_(last_seq + 1),
      checksum_(last_checksum),
      open_(std::make_unique<Group>()) {
  write_thread_ = std::thread([this] { WriteLoop(); });
  sync_thread_ = std::thread([this] { SyncLoop(); });
  thread_ = std::thread([this] { Run(); });
}

Writer::~Writer() { Stop(); }

void Writer::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Writer::Submit(std::vector<Command> commands, Completion done, bool caller_free) {
  size_t n = commands.size();
  {
    std::unique_lock<std::mutex> lock(mu_);
    not_full_.wait(lock, [&] {
      return stopping_ || queued_commands_ == 0 ||
             queued_commands_ + n <= config_.queue_commands_max;
    });
    if (caller_free && CallerMayWrite(n)) {
      // The writer is idle and has been for the last few groups: write this
      // submission here, on the caller's thread, instead of waking the
      // writer to do it and then being woken for the answer.
      busy_ = true;
      open_->commands = n;
      lock.unlock();
      metrics_->caller_groups.fetch_add(1, std::memory_order_relaxed);
      rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable);  // as on the writer (Run)
      AddToGroup(Submission{std::move(commands), std::move(done)});
      CommitOpenGroup();
      lock.lock();
      busy_ = false;
      bool wake = !queue_.empty() || stopping_;
      lock.unlock();
      if (wake) wake_.notify_one();
      return;
    }
    if (!stopping_) {
      queued_commands_ += n;
      queue_.push_back(Submission{std::move(commands), std::move(done)});
      lock.unlock();
      wake_.notify_one();
      return;
    }
  }
  // Stopped: refuse rather than lose the answer.
  std::vector<Outcome> outcomes(
      n, Outcome::Error(ErrorCode::kOverloaded, "the ledger is shutting down"));
  done(std::move(outcomes));
}

void Writer::Run() {
  pthread_setname_np(pthread_self(), "ledger-writer");
  // RocksDB counts every key comparison in a thread-local perf context by
  // default; nothing reads those counters, and on the writer they cost a
  // TLS lookup per memtable comparison.
  rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable);
  std::vector<Submission> subs;
  std::vector<std::unique_ptr<Group>> done;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      busy_ = false;
      // The next submission joins the open group if it fits (an empty group
      // takes one of any size) and the open group cannot be handed on yet: a
      // group ready for the free write thread goes first, so each batch is
      // written and synced while the next is decided.
      auto next_fits = [&] {
        return !queue_.empty() &&
               (open_->commands == 0 ||
                (open_->commands + queue_.front().commands.size() <= config_.group_commands_max &&
                 !CanHandOn()));
      };
      auto front_done = [&] {
        return !in_flight_.empty() && in_flight_.front()->stage == Group::Stage::kDone;
      };
      // Wake for an answered group, for submissions while the open group has
      // room, for the write thread freed, or to stop once everything is
      // written and answered. (A non-empty open group always has a group in
      // flight before it.)
      wake_.wait(lock, [&] {
        return !busy_ && (front_done() || next_fits() || CanHandOn() ||
                          (stopping_ && queue_.empty() && in_flight_.empty()));
      });
      while (front_done()) {
        done.push_back(std::move(in_flight_.front()));
        in_flight_.pop_front();
      }
      if (done.empty() && stopping_ && queue_.empty() && in_flight_.empty() &&
          open_->commands == 0) {
        break;  // everything answered
      }
      while (next_fits()) {
        size_t n = queue_.front().commands.size();
        open_->commands += n;
        queued_commands_ -= n;
        subs.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      busy_ = true;
    }
    if (!subs.empty()) not_full_.notify_all();
    if (!done.empty()) {
      // Their entries are in RocksDB: the oldest group still live stops
      // looking at them (groups finish in order, so it chained to the last).
      (in_flight_.empty() ? *open_ : *in_flight_.front()).pending.older = nullptr;
    }
    for (auto& group : done) Recycle(std::move(group));
    done.clear();
    for (Submission& sub : subs) AddToGroup(std::move(sub));
    subs.clear();
    if (open_->commands == 0) continue;
    if (in_flight_.empty() && open_->commands < kPipelineCommandsMin) {
      // A small group: write it here. Handing it on would start an fsync
      // for a few commands and split the next arrivals across two syncs.
      CommitOpenGroup();
      continue;
    }
    bool hand_on;
    {
      std::lock_guard<std::mutex> lock(mu_);
      hand_on = CanHandOn();
      if (hand_on) {
        quiet_groups_ = 0;
        // Decide the next group on top of this one.
        metrics_->overlapped_groups.fetch_add(1, std::memory_order_relaxed);
        std::unique_ptr<Group> next = TakeGroup();
        next->pending.older = &open_->pending;
        in_flight_.push_back(std::move(open_));
        open_ = std::move(next);
      }
    }
    if (hand_on) write_cv_.notify_one();
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    threads_stop_ = true;
  }
  write_cv_.notify_one();
  sync_cv_.notify_one();
  write_thread_.join();
  sync_thread_.join();
}

void Writer::CommitOpenGroup() {
  WriteGroup(*open_, /*sync=*/true);
  {
    // Before the answers: a client's next submission must not count as
    // having waited for this group.
    std::lock_guard<std::mutex> lock(mu_);
    CountQuiet();
  }
  Observe(*open_);
  FinishGroup(*open_, /*keep_states=*/false);
  Recycle(std::move(open_));
  open_ = TakeGroup();
}

bool Writer::CallerMayWrite(size_t commands) const {
  // A large submission goes to the writer all the same: there, its group is
  // handed on, and the write thread's RocksDB write and the emptying of the
  // group for reuse overlap the caller's next batch (one thread submitting
  // batches of 8,192 without sync: 5% slower written by the caller). (An
  // open group with commands always has a group in flight before it; its
  // emptiness is checked all the same, for the caller takes it over.)
  return config_.caller_writes && commands < kPipelineCommandsMin && !stopping_ && !busy_ &&
         queue_.empty() && in_flight_.empty() && open_->commands == 0 &&
         quiet_groups_ >= kQuietGroupsForCallerWrites;
}

void Writer::CountQuiet() {
  // A submission that arrived while the group was written: more than one
  // client at a time.
  quiet_groups_ = queue_.empty() ? std::min(quiet_groups_ + 1, kQuietGroupsForCallerWrites) : 0;
}

bool Writer::CanHandOn() const {
  // A large open group, and the write thread free for it.
  return open_->commands >= kPipelineCommandsMin && in_flight_.size() < kInFlightMax &&
         (in_flight_.empty() || in_flight_.back()->stage != Group::Stage::kToWrite);
}

void Writer::Recycle(std::unique_ptr<Group> group) {
  // As many spares as groups can be live besides the open one: with fewer,
  // groups finishing together freed the rest, and the next ones grew their
  // buffers and tables again from nothing.
  if (group->batch.GetDataSize() > kReusedGroupBytesMax || spares_.size() > kInFlightMax) return;
  group->Reset();
  spares_.push_back(std::move(group));
}

std::unique_ptr<Writer::Group> Writer::TakeGroup() {
  if (spares_.empty()) return std::make_unique<Group>();
  std::unique_ptr<Group> group = std::move(spares_.back());
  spares_.pop_back();
  return group;
}

void Writer::WriteLoop() {
  pthread_setname_np(pthread_self(), "ledger-write");
  rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable);
  for (;;) {
    Group* group = nullptr;
    {
      std::unique_lock<std::mutex> lock(mu_);
      auto to_write = [&] {
        return !in_flight_.empty() && in_flight_.back()->stage == Group::Stage::kToWrite;
      };
      write_cv_.wait(lock, [&] { return threads_stop_ || to_write(); });
      if (!to_write()) return;  // stopping
      group = in_flight_.back().get();
    }
    // In RocksDB (the next group's lookups see it there), not yet durable.
    WriteGroup(*group, /*sync=*/false);
    {
      std::lock_guard<std::mutex> lock(mu_);
      group->stage = Group::Stage::kWritten;
    }
    sync_cv_.notify_one();
    wake_.notify_one();  // the writer may hand on the next group
  }
}

void Writer::SyncLoop() {
  pthread_setname_np(pthread_self(), "ledger-sync");
  std::vector<Group*> syncing;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      auto written = [&] {
        for (auto& g : in_flight_) {
          if (g->stage == Group::Stage::kWritten) return true;
        }
        return false;
      };
      sync_cv_.wait(lock, [&] { return threads_stop_ || written(); });
      if (!written()) return;  // stopping
      // One sync covers every group written before it starts.
      for (auto& g : in_flight_) {
        if (g->stage == Group::Stage::kWritten) {
          g->stage = Group::Stage::kSyncing;
          syncing.push_back(g.get());
        }
      }
    }
    if (Status s = store_->SyncWal(); !s.ok()) FailStop(s.message());
    // Published and answered here, as soon as durable: the writer would
    // only get to them between the submissions it decides. Their states
    // stay in place, for the writer may be reading them (StateFor).
    for (Group* g : syncing) {
      Observe(*g);
      FinishGroup(*g, /*keep_states=*/true);
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (Group* g : syncing) g->stage = Group::Stage::kDone;
    }
    syncing.clear();
    wake_.notify_one();
  }
}

void Writer::WriteGroup(Group& group, bool sync) {
  group.write_start = std::chrono::steady_clock::now();
  // Groups are written in order (the write thread takes the one handed on
  // after the last it wrote; the writer writes only with none in flight), so
  // each continues the checksum chain where the previous one left it.
  if (group.events > 0) {
    if (Status s = store_->Write(&group.batch, group.pending, &checksum_, sync); !s.ok()) {
      FailStop(s.message());
    }
  }
  group.checksum = checksum_;
}

void Writer::Observe(const Group& group) {
  if (group.events == 0) return;
  double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - group.write_start).count();
  metrics_->sync_seconds.Observe(secs);
  metrics_->group_events.Observe(static_cast<double>(group.events));
  metrics_->groups.fetch_add(1, std::memory_order_relaxed);
}

void Writer::AddToGroup(Submission&& sub) {
  Group& group = *open_;
  std::vector<Outcome>& outcomes = group.outcomes.emplace_back();
  size_t n = sub.commands.size();
  outcomes.reserve(n);
  // Each command's user hashed once, ahead (0 for a command that names no
  // user: its user comes from its payment).
  user_hashes_.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const std::string& user = sub.commands[i].user_id;
    user_hashes_[i] = user.empty() ? 0 : UserIdHash(user);
  }
  bool prefetch = n >= kPrefetchChunk;
  for (size_t i = 0; i < n; ++i) {
    if (prefetch && i % kPrefetchChunk == 0) PrefetchStates(group, i, n);
    Process(sub.commands[i], user_hashes_[i], group, &outcomes.emplace_back());
  }
  group.subs.push_back(std::move(sub));
  group.last_seq = next_seq_ - 1;
}

void Writer::PrefetchStates(const Group& group, size_t at, size_t n) {
  // StateFor's lookups: in the open group, each group in flight and the
  // projection, each a cache miss at 10,000 users and more. The projection
  // under its lock (the sync thread may be growing it); a hint is not worth
  // waiting for a publish.
  std::shared_lock<std::shared_mutex> lock(*projection_mutex_, std::try_to_lock);
  if (!lock.owns_lock()) return;
  PrefetchChunk(
      at, n,
      [&](size_t j) {
        uint64_t h = user_hashes_[j];
        group.states.PrefetchSlot(h);
        for (const auto& g : in_flight_) g->states.PrefetchSlot(h);
        projection_->PrefetchSlot(h);
      },
      [&](size_t j) {
        uint64_t h = user_hashes_[j];
        group.states.PrefetchEntry(h);
        for (const auto& g : in_flight_) g->states.PrefetchEntry(h);
        projection_->PrefetchEntry(h);
      });
}

void Writer::FinishGroup(Group& group, bool keep_states) {
  if (!group.states.empty()) {
    std::unique_lock<std::shared_mutex> lock(*projection_mutex_);
    std::vector<GroupStates::Entry>& entries = group.states.entries();
    // Each user's slot asked for two chunks' length ahead, its entry one, item
    // by item: here nothing else runs between the lookups, so a chunk's
    // entries asked for at its start (PrefetchChunk) arrived too late for
    // its first ones (the sync thread 0.30-0.38 against 0.23-0.32 us per
    // event).
    for (size_t i = 0; i < std::min(entries.size(), 2 * kPrefetchChunk); ++i) {
      projection_->PrefetchSlot(entries[i].hash);
    }
    for (size_t i = 0; i < entries.size(); ++i) {
      if (i + 2 * kPrefetchChunk < entries.size()) {
        projection_->PrefetchSlot(entries[i + 2 * kPrefetchChunk].hash);
      }
      if (i + kPrefetchChunk < entries.size()) {
        projection_->PrefetchEntry(entries[i + kPrefetchChunk].hash);
      }
      GroupStates::Entry& e = entries[i];
      projection_->Publish(e.user_id, e.hash,
                           keep_states ? UserState(e.state) : std::move(e.state));
    }
    projection_->SetLastSeq(group.last_seq, projection_->event_count() + group.events);
  }
  for (size_t i = 0; i < group.subs.size(); ++i) {
    for (const Outcome& o : group.outcomes[i]) {
      if (!o.ok()) {
        metrics_->rejections_by_code[static_cast<size_t>(o.code)].fetch_add(
            1, std::memory_order_relaxed);
      } else if (o.duplicate) {
        metrics_->duplicates.fetch_add(1, std::memory_order_relaxed);
      }
    }
    if (before_answer) before_answer(group.outcomes[i]);
    group.subs[i].done(std::move(group.outcomes[i]));
  }
  if (after_group && group.events > 0) after_group(group.last_seq, group.checksum);
}

UserState& Writer::StateFor(Group& group, const std::string& user_id, uint64_t hash) {
  if (UserState* state = group.states.Find(user_id, hash)) return *state;
  // Groups in flight hold states newer than the projection's; the newest
  // wins. (Only this thread adds or removes them; the other threads change
  // only their stage.)
  for (auto g = in_flight_.rbegin(); g != in_flight_.rend(); ++g) {
    if (UserState* in_flight = (*g)->states.Find(user_id, hash)) {
      return group.states.Add(user_id, hash, *in_flight);
    }
  }
  // The sync thread may be publishing an older group: read under the lock.
  // (What it publishes for this user is no newer than the projection plus
  // the groups in flight, just searched.)
  UserState copy;
  {
    std::shared_lock<std::shared_mutex> lock(*projection_mutex_);
    if (const UserState* current = projection_->Find(user_id, hash)) copy = *current;
  }
  return group.states.Add(user_id, hash, std::move(copy));
}

void Writer::Append(Group& group, UserState& state, Event&& event, bool activated_top_up,
                    bool generated_key) {
  // Link the user's history: the event names the user's previous one.
  event.prev_user_seq = state.last_seq;
  // The same fold as replay; a disagreement here is a bug in decide.
  if (Status s = ApplyEvent(state, event, config_.bounds); !s.ok()) {
    FailStop("decide produced an event the fold rejects: " + s.message());
  }
  metrics_->events_by_kind[static_cast<size_t>(event.kind)].fetch_add(1, std::memory_order_relaxed);
  bool index_user = ++state.unindexed >= kByUserEvery;
  if (index_user) state.unindexed = 0;
  store_->AddEvent(std::move(event), activated_top_up, generated_key, index_user, &group.batch,
                   &group.pending);
  ++next_seq_;
  ++group.events;
}

std::optional<StoredTx> Writer::LoadTx(std::optional<KeyEntry> entry, Group& group) {
  if (!entry) return std::nullopt;
  StoredTx tx;
  Status s = store_->ReadEvent(entry->seq, &tx.event, &group.pending);
  if (s.ok() && entry->activation_seq != 0) {
    tx.activation.emplace();
    s = store_->ReadEvent(entry->activation_seq, &*tx.activation, &group.pending);
  }
  if (!s.ok()) FailStop("index names an unreadable event: " + s.message());
  return tx;
}

void Writer::Process(Command& c, uint64_t user_hash, Group& group, Outcome* out) {
  Facts& facts = facts_;
  facts.Clear();
  bool by_payment =
      c.kind == Kind::kRefund || c.kind == Kind::kRefundRequest || c.kind == Kind::kDispute;
  if (by_payment && !c.touch_only) {
    // A payment of another user than the one named is, to this user, unknown.
    std::optional<PaymentEntry> payment = store_->GetPayment(c.payment_key, &group.pending);
    bool usable = payment && (c.user_id.empty() || payment->user_id == c.user_id);
    if (!usable && c.user_id.empty()) {
      // No user to charge: decide still answers (a skipped refund, or not_found).
      DecideContext ctx{next_seq_, clock_(), config_.bounds, config_.refund_tolerance,
                        config_.prices.get()};
      *out = std::move(Decide(UserState{}, std::move(c), facts, ctx).outcome);
      return;
    }
    if (usable) {
      if (c.user_id.empty()) user_hash = UserIdHash(payment->user_id);
      c.user_id = payment->user_id;
      facts.payment = LoadTx(KeyEntry{payment->seq, 0}, group);
    }
  }
  UserState& state = StateFor(group, c.user_id, user_hash);
  TimeUs now = c.has_time ? c.time_us : clock_();
  if (now < state.last_time) now = state.last_time;  // a user's time never goes backwards

  DecideContext ctx{next_seq_, now, config_.bounds, config_.refund_tolerance, config_.prices.get()};
  if (config_.monthly_refill && RefillDue(state, now) &&
      !store_->GetKey(c.user_id, RefillKey(now), &group.pending)) {
    Append(group, state, DecideRefill(state, c.user_id, *config_.monthly_refill, ctx), false,
           false);
    ctx.seq = next_seq_;
  }
  if (c.touch_only) {
    out->user_id = c.user_id;
    out->balance = state.balance;
    out->seq = state.last_seq;
    out->time_us = state.updated_at;
    return;
  }
  bool generated_key = c.key.empty();
  if (generated_key) {
    // Generated keys name their seq, which no event has yet; a client may
    // have used the same text as a key already (by_key), so look, and add a
    // suffix until it is free.
    c.key = GeneratedKey(ctx.seq);
    for (int n = 1; store_->GeneratedKeyTaken(c.user_id, c.key, &group.pending); ++n) {
      c.key = GeneratedKey(ctx.seq, n);
    }
  } else {
    facts.same_key = LoadTx(store_->GetKey(c.user_id, c.key, &group.pending), group);
  }
  if (c.kind == Kind::kTopUp) {
    if (auto owner = store_->GetPayment(c.key, &group.pending))
      facts.payment_owner = owner->user_id;
  }
  bool activates_top_up = false;
  if (c.kind == Kind::kActivate && facts.same_key) {
    activates_top_up = facts.same_key->event.kind == Kind::kTopUp;
    if (!c.new_key.empty() && c.new_key != c.key) {
      facts.new_key_taken = store_->GetKey(c.user_id, c.new_key, &group.pending).has_value() ||
                            (activates_top_up && store_->GetPayment(c.new_key, &group.pending));
    }
  }
  Decision d = Decide(state, std::move(c), facts, ctx);  // c ends here
  if (d.event) Append(group, state, std::move(*d.event), activates_top_up, generated_key);
  *out = std::move(d.outcome);
}

}  // namespace ledger
