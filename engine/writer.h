// The writer: one thread that owns all changes to the ledger. It drains the
// submission queue, decides and folds each command in order into a group,
// and makes the group durable with one write (group commit). A small group
// is written and synced by the writer itself. A large one (kPipelineCommandsMin
// commands or more) is handed on: a second thread writes it to RocksDB
// without syncing and a third syncs the WAL, which covers every group written
// before that sync started; meanwhile the writer decides the next group on
// top of the ones in flight. When a group is durable, its user states are
// published to the projection and only then are its commands answered (by
// the sync thread for a handed-on group, as soon as its sync returns);
// groups are answered in order, so no answer ever rests on a state that is
// not durable yet.
//
// One client at a time is the exception: when the writer is idle and has
// found nothing waiting after its last few groups, a submitting thread that
// would only wait for its answer (Submit's caller_free) decides, writes,
// syncs and answers its own submission, holding the
// writer's state (busy_) meanwhile, so the writer thread is not woken for it
// and the caller is not woken for the answer. It is the same group commit,
// on another thread; the writer takes over as soon as submissions overlap.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <thread>
#include <vector>

#include "engine/command.h"
#include "engine/decide.h"
#include "engine/log_store.h"
#include "engine/metrics.h"
#include "engine/outcome.h"
#include "engine/price_table.h"
#include "projections/projection.h"

namespace ledger {

using Clock = std::function<TimeUs()>;
using Completion = std::function<void(std::vector<Outcome>)>;

TimeUs SystemClockUs();

struct EngineConfig {
  Bounds bounds;
  Amount refund_tolerance = 0;
  std::optional<Amount> monthly_refill;
  std::shared_ptr<const PriceTable> prices;
  // Commands queued but not yet taken by the writer; Submit blocks beyond it
  // (back-pressure instead of unbounded memory).
  size_t queue_commands_max = 1 << 16;
  // Events in one group commit; bounds one WriteBatch and one pause.
  size_t group_commands_max = 1 << 14;
  // With one submission at a time (a single client) of fewer than 256
  // commands, the submitting thread writes and syncs its own group when the
  // writer is idle: two thread wake-ups fewer per command (measured over
  // HTTP at 1 connection: 6,300-6,600 -> 7,500-8,800 commands/s, p50 0.15 ->
  // 0.12 ms).
  bool caller_writes = true;
};

class Writer {
 public:
  // `projection` is published under `projection_mutex` (exclusive); readers
  // take it shared. `last_seq`/`last_checksum` continue the log's chain.
  Writer(LogStore* store, Projection* projection, std::shared_mutex* projection_mutex,
         EngineConfig config, Clock clock, EngineMetrics* metrics, Seq last_seq,
         uint64_t last_checksum);
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  // Thread-safe. `done` runs once every command's outcome is final (appended
  // events are durable by then): on the writer thread, or, when the writer
  // is idle and the load is one submission at a time
  // (EngineConfig::caller_writes), on the caller's thread before Submit
  // returns. So `done` must not wait for another submission, nor take a
  // lock its caller holds. Only a `caller_free` caller, one with nothing
  // else to do until the answer, ever writes its own submission; others
  // must not wait behind an fdatasync (an HTTP thread with other
  // connections, a thread streaming submissions).
  void Submit(std::vector<Command> commands, Completion done, bool caller_free);

  // Answers everything queued, then stops the thread. Idempotent.
  void Stop();

  // Hook run after each durable group (on the thread that committed it;
  // groups one at a time, in order), with the log's last seq and that
  // record's checksum (snapshots use it). Set before the first Submit.
  std::function<void(Seq, uint64_t)> after_group;
  // Hook run on a submission's outcomes just before its `done` (the ledger
  // fills in dispute evidence). Set before the first Submit.
  std::function<void(std::vector<Outcome>&)> before_answer;

 private:
  struct Submission {
    std::vector<Command> commands;
    Completion done;
  };
  struct Group;

  void Run();
  void WriteLoop();
  void SyncLoop();
  // Decides `sub` into the open group.
  void AddToGroup(Submission&& sub);
  // The group's write, synced or not (fail-stop on error).
  void WriteGroup(Group& group, bool sync);
  // Whether the open group is to be handed on now (mu_ held).
  bool CanHandOn() const;
  // Writes the open group (synced), publishes and answers it, and opens the
  // next one (whoever is busy_, with no group in flight).
  void CommitOpenGroup();
  // Whether a submitter may write its submission of `commands` itself now
  // (mu_ held).
  bool CallerMayWrite(size_t commands) const;
  // Counts a group commit just written, not yet answered, into
  // quiet_groups_ (mu_ held).
  void CountQuiet();
  // Counts a durable group in the metrics.
  void Observe(const Group& group);
  // Publishes a durable group and answers its commands: on the sync thread
  // for a handed-on group (its states copied, `keep_states`, for the writer
  // may still read them), on the writer for one it wrote itself.
  void FinishGroup(Group& group, bool keep_states);
  // Keeps a finished group's allocations for the next one.
  void Recycle(std::unique_ptr<Group> group);
  std::unique_ptr<Group> TakeGroup();
  // Decides `command` into the group and sets `*out` to its answer (built in
  // the group's list of answers: an Outcome is six strings to move).
  // `user_hash` is UserIdHash(command.user_id), or anything when the
  // command names no user.
  void Process(Command& command, uint64_t user_hash, Group& group, Outcome* out);
  // Asks the cache for the user states of the chunk of commands at `at` of the
  // submission being decided (user_hashes_, n of them) ahead of StateFor.
  void PrefetchStates(const Group& group, size_t at, size_t n);
  UserState& StateFor(Group& group, const std::string& user_id, uint64_t hash);
  void Append(Group& group, UserState& state, Event&& event, bool activated_top_up,
              bool generated_key);
  std::optional<StoredTx> LoadTx(std::optional<KeyEntry> entry, Group& group);

  LogStore* store_;
  Projection* projection_;
  std::shared_mutex* projection_mutex_;
  EngineConfig config_;
  Clock clock_;
  EngineMetrics* metrics_;
  Seq next_seq_;
  // The last written record's checksum: advanced by whichever thread writes
  // the next group (the write thread, or the writer with none in flight).
  uint64_t checksum_;

  std::mutex mu_;
  std::condition_variable wake_;  // the writer: submissions, a group written or durable, stop
  std::condition_variable not_full_;
  std::condition_variable write_cv_;  // the write thread: a group to write, stop
  std::condition_variable sync_cv_;   // the sync thread: groups written, stop
  std::deque<Submission> queue_;
  size_t queued_commands_ = 0;
  bool stopping_ = false;
  // Whether a thread has the writer's state (the open group, the spares,
  // the next seq, the chain's checksum): the writer from taking submissions
  // until its next wait, or a caller writing its own submission. Whoever
  // sets it owns that state until it clears it, under mu_.
  bool busy_ = false;
  // Group commits in a row, up to kQuietGroupsForCallerWrites, that found no
  // submission waiting once written.
  int quiet_groups_ = 0;
  // The group being decided (whoever is busy_).
  std::unique_ptr<Group> open_;
  // Groups handed on and not yet answered, oldest first, each in a stage
  // (Group::stage, under mu_). Only the writer adds and removes groups.
  std::deque<std::unique_ptr<Group>> in_flight_;
  std::vector<std::unique_ptr<Group>> spares_;
  Facts facts_;                        // the command being decided's (Process; whoever is busy_)
  std::vector<uint64_t> user_hashes_;  // of the submission being decided (whoever is busy_)  //
                                       // finished groups, emptied (whoever is busy_)
  bool threads_stop_ = false;
  std::thread write_thread_;
  std::thread sync_thread_;
  std::thread thread_;
};

}  // namespace ledger
