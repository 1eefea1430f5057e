// The engine on a real RocksDB: reopen, corruption, and the rules of SPEC §2
// that the seeds do not cover.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <barrier>
#include <chrono>
#include <filesystem>
#include <future>
#include <map>
#include <thread>

#include <rocksdb/db.h>

#include "engine/time_format.h"
#include "engine/wal_pool.h"
#include "events/codec.h"
#include "replay/replay.h"
#include "snapshots/snapshot_store.h"
#include "tests/test_support.h"

namespace ledger::testing {
namespace {

void DropSnapshots(LogStore* store) {
  ASSERT_TRUE(store->db()
                  ->DeleteRange(rocksdb::WriteOptions(), store->snapshots_cf(), SnapshotKey(0, 0),
                                SnapshotKey(~Seq{0}, 0))
                  .ok());
}

class LedgerTest : public ::testing::Test {
 protected:
  void SetUp() override { Reopen(); }
  void Reopen() {
    ledger_.reset();
    LedgerOptions o;
    o.clock = clock_.AsClock();
    o.flush_direct_io = direct_io_;
    ledger_ = OpenLedger(dir_.path(), o);
  }
  // The store alone, with the ledger closed: to change what is on the disk.
  std::unique_ptr<LogStore> OpenStore() {
    std::unique_ptr<LogStore> store;
    Status s = LogStore::Open(StoreOptions{dir_.path(), true, false}, &store);
    EXPECT_TRUE(s.ok()) << s.message();
    return store;
  }
  // Why the directory as it is now does not open (it must not).
  std::string OpenError() {
    std::unique_ptr<Ledger> other;
    LedgerOptions o;
    o.data_dir = dir_.path();
    Status s = Ledger::Open(o, &other);
    EXPECT_FALSE(s.ok());
    return s.message();
  }
  Outcome Run(Command c) { return ledger_->Execute(std::move(c)); }
  Outcome Ok(Command c) {
    Outcome o = Run(std::move(c));
    EXPECT_TRUE(o.ok()) << ErrorCodeName(o.code) << ": " << o.message;
    return o;
  }

  TempDir dir_;
  ManualClock clock_;
  bool direct_io_ = false;  // LedgerOptions::flush_direct_io at the next Reopen
  std::unique_ptr<Ledger> ledger_;
};

TEST_F(LedgerTest, ReopenReplaysToTheSameBalancesAndStateHash) {
  Ok(TopUp("a", 1000, "pi_a"));
  Ok(Usage("a", 250));
  Ok(FromJson(R"({"type":"top_up","user_id":"b","amount":70,"pending":true,"key":"pi_b"})"));
  Ok(Dispute("pi_a", "dp_1", 100, "needs_response"));
  Ok(RefundRequest("pi_a", "too much"));
  LedgerStats before = ledger_->Stats();
  EXPECT_EQ(before.events, 5u);
  EXPECT_EQ(before.users, 2u);
  Reopen();
  LedgerStats after = ledger_->Stats();
  EXPECT_EQ(after.state_hash, before.state_hash);
  EXPECT_EQ(after.last_seq, 5u);
  EXPECT_EQ(ledger_->PeekBalance("a").balance, 750);
  // Ingestion continues with the next seq, and pending state survived.
  Outcome act = Ok(Activate("b", "pi_b"));
  EXPECT_EQ(act.seq, 6u);
  EXPECT_EQ(act.balance, 70);
  EXPECT_EQ(Run(RefundRequest("pi_a", "again")).code, ErrorCode::kConflict);
}

TEST_F(LedgerTest, AFlippedByteInAStoredRecordIsReportedWithItsSeq) {
  for (int i = 0; i < 5; ++i) Ok(TopUp("a", 10 + i, "pi_" + std::to_string(i)));
  ledger_.reset();
  {
    // Damage record 3 behind the engine's back.
    std::unique_ptr<LogStore> store = OpenStore();
    std::string record;
    ASSERT_TRUE(store->ReadRecord(3, &record).ok());
    record[record.size() / 3] ^= 0x10;
    ASSERT_TRUE(store->db()->Put(rocksdb::WriteOptions(), store->log_cf(), SeqKey(3), record).ok());
    DropSnapshots(store.get());  // as after a crash before any snapshot
  }
  std::string error = OpenError();
  EXPECT_NE(error.find("seq 3"), std::string::npos) << error;
}

// Records written before 2026-12-05 are unpacked Cap'n Proto (log format
// ledger-log-2). A directory of them recovers, reads them in histories,
// chains packed records after them, and is marked ledger-log-3.
TEST_F(LedgerTest, UnpackedRecordsOfFormat2AreReadBesideThePackedOnesAfterThem) {
  Ok(TopUp("a", 1000, "pi_a"));
  Ok(FromJson(R"({"type":"usage","user_id":"a","amount":250,"metadata":{"run":"r-1"}})"));
  Ok(FromJson(R"({"type":"top_up","user_id":"b","amount":70,"pending":true,"key":"pi_b"})"));
  ledger_.reset();
  {
    // As a format-2 build left them: every payload unpacked, chained anew.
    std::unique_ptr<LogStore> store = OpenStore();
    uint64_t checksum = kGenesisChecksum;
    for (Seq seq = 1; seq <= 3; ++seq) {
      Event e;
      ASSERT_TRUE(store->ReadEvent(seq, &e).ok());
      std::string record;
      EncodeEvent(e, &record);
      ASSERT_FALSE(IsPacked(record));
      checksum = AppendChecksum(&record, 0, checksum);
      ASSERT_TRUE(
          store->db()->Put(rocksdb::WriteOptions(), store->log_cf(), SeqKey(seq), record).ok());
    }
    ASSERT_TRUE(store->PutMeta("format", "ledger-log-2").ok());
    DropSnapshots(store.get());  // recovery replays all three
  }
  Reopen();
  EXPECT_EQ(ledger_->recovered_from_snapshot(), 0u);
  EXPECT_EQ(ledger_->PeekBalance("a").balance, 750);
  std::string format;
  ASSERT_TRUE(ledger_->store()->GetMeta("format", &format).ok());
  EXPECT_EQ(format, "ledger-log-3");
  ASSERT_FALSE(ledger_->recovery_notes().empty());
  EXPECT_NE(ledger_->recovery_notes().back().find("after seq 3 are packed"), std::string::npos)
      << ledger_->recovery_notes().back();
  Outcome act = Ok(Activate("b", "pi_b"));  // seq 4, packed
  EXPECT_EQ(act.seq, 4u);
  std::string old_record, new_record;
  ASSERT_TRUE(ledger_->store()->ReadRecord(2, &old_record).ok());
  ASSERT_TRUE(ledger_->store()->ReadRecord(4, &new_record).ok());
  EXPECT_FALSE(IsPacked(old_record));
  EXPECT_TRUE(IsPacked(new_record));
  HistoryPage page;
  ASSERT_TRUE(ReadHistory(ledger_->store(), "a", HistoryQuery{}, &page).ok());
  ASSERT_EQ(page.items.size(), 2u);
  EXPECT_EQ(page.items[0].event.metadata, R"({"run":"r-1"})");
  EXPECT_EQ(page.items[0].event.running_balance, 750);
  uint64_t hash = ledger_->StateHash();
  // A full replay checks one chain through both encodings.
  ledger_.reset();
  {
    std::unique_ptr<LogStore> store = OpenStore();
    DropSnapshots(store.get());
  }
  Reopen();
  EXPECT_EQ(ledger_->recovered_from_snapshot(), 0u);
  EXPECT_EQ(ledger_->StateHash(), hash);
  EXPECT_EQ(ledger_->PeekBalance("b").balance, 70);
}

TEST_F(LedgerTest, ADirectoryOfAnotherLogFormatIsRefusedByName) {
  Ok(TopUp("a", 10, "pi_a"));
  ledger_.reset();
  {
    std::unique_ptr<LogStore> store = OpenStore();
    ASSERT_TRUE(store->PutMeta("format", "ledger-log-9").ok());
  }
  std::string error = OpenError();
  EXPECT_NE(error.find("'ledger-log-9'"), std::string::npos) << error;
}

TEST_F(LedgerTest, ALostRecordIsReportedWithItsSeq) {
  for (int i = 0; i < 4; ++i) Ok(TopUp("a", 10, "pi_" + std::to_string(i)));
  ledger_.reset();
  {
    std::unique_ptr<LogStore> store = OpenStore();
    ASSERT_TRUE(store->db()->Delete(rocksdb::WriteOptions(), store->log_cf(), SeqKey(2)).ok());
    DropSnapshots(store.get());
  }
  std::string error = OpenError();
  EXPECT_NE(error.find("seq 2: missing"), std::string::npos) << error;
}

TEST_F(LedgerTest, DamageBeforeTheSnapshotIsForTheAuditToFind) {
  for (int i = 0; i < 5; ++i) Ok(TopUp("a", 10 + i, "pi_" + std::to_string(i)));
  uint64_t hash = ledger_->StateHash();
  ledger_.reset();  // a clean close writes a snapshot at seq 5
  {
    std::unique_ptr<LogStore> store = OpenStore();
    std::string record;
    ASSERT_TRUE(store->ReadRecord(2, &record).ok());
    record[20] ^= 0x01;
    ASSERT_TRUE(store->db()->Put(rocksdb::WriteOptions(), store->log_cf(), SeqKey(2), record).ok());
    // The audit's full replay names the damaged record.
    Projection full;
    ReplayOptions o;
    o.stop_on_problem = false;
    ReplayResult result;
    (void)ReplayLog(store->db(), store->log_cf(), 0, kGenesisChecksum, &full, o, &result);
    ASSERT_FALSE(result.problems.empty());
    EXPECT_NE(result.problems[0].find("seq 2"), std::string::npos) << result.problems[0];
  }
  // Recovery starts from the snapshot and serves the same state.
  Reopen();
  EXPECT_EQ(ledger_->recovered_from_snapshot(), 5u);
  EXPECT_EQ(ledger_->StateHash(), hash);
}

TEST_F(LedgerTest, PaymentIdsAreUniqueAcrossUsers) {
  Ok(TopUp("a", 100, "pi_shared"));
  Outcome o = Run(TopUp("b", 100, "pi_shared"));
  EXPECT_EQ(o.code, ErrorCode::kConflict);
  EXPECT_EQ(o.field, "key");
  // The same user retrying is a duplicate, not a conflict.
  Outcome dup = Ok(TopUp("a", 100, "pi_shared"));
  EXPECT_TRUE(dup.duplicate);
  EXPECT_EQ(dup.seq, 1u);
  EXPECT_EQ(ledger_->Stats().events, 1u);
}

TEST_F(LedgerTest, KeysAreUniquePerUserAcrossKinds) {
  Ok(Usage("a", 0, "job-1"));  // amount 0 appends nothing, claims nothing
  Ok(Grant("a", 50, "job-1"));
  EXPECT_EQ(Run(Usage("a", 10, "job-1")).code, ErrorCode::kConflict);
  Ok(Usage("b", 0));
  EXPECT_EQ(Ok(Grant("b", 5, "job-1")).balance, 5);  // another user's key space
}

TEST_F(LedgerTest, GeneratedKeysAreReturnedAndUnique) {
  Outcome a = Ok(Grant("a", 5));
  Outcome b = Ok(Grant("a", 5));
  EXPECT_EQ(a.key, "ledger:1");
  EXPECT_EQ(b.key, "ledger:2");
  // A client that used the generated form itself does not collide.
  Ok(Grant("c", 1, "ledger:4"));
  Outcome c = Ok(Grant("c", 1));
  EXPECT_EQ(c.seq, 4u);
  EXPECT_EQ(c.key, "ledger:4.1");
  // Also after a restart (the store remembers that such keys exist).
  Ok(Grant("c", 1, "ledger:6"));  // seq 5
  Reopen();
  Outcome d = Ok(Grant("c", 1));
  EXPECT_EQ(d.seq, 6u);
  EXPECT_EQ(d.key, "ledger:6.1");
  // Activating a pending grant under a new key of that form counts too.
  Ok(FromJson(R"({"type":"grant","user_id":"e","amount":3,"pending":true,"key":"g_e"})"));  // 7
  Ok(FromJson(R"({"type":"activate","user_id":"e","key":"g_e","new_key":"ledger:10"})"));   // 8
  Reopen();
  Ok(Grant("x", 1));  // 9
  Outcome e = Ok(Grant("e", 1));
  EXPECT_EQ(e.seq, 10u);
  EXPECT_EQ(e.key, "ledger:10.1");
}

TEST_F(LedgerTest, ActivateRenamesAndTheNewKeyIsThePaymentId) {
  Ok(FromJson(R"({"type":"top_up","user_id":"a","amount":300,"pending":true,"key":"checkout_1"})"));
  EXPECT_EQ(Run(Activate("a", "nope")).code, ErrorCode::kNotFound);
  Outcome act = Ok(Activate("a", "checkout_1", "pi_real"));
  EXPECT_EQ(act.key, "pi_real");
  EXPECT_EQ(act.balance, 300);
  // Refunds name the new payment id.
  Outcome r = Ok(Refund("pi_real", 100, "re_1"));
  EXPECT_EQ(r.balance, 200);
  // Both keys now name the active top-up.
  EXPECT_TRUE(Ok(Activate("a", "pi_real")).already_active);
  EXPECT_TRUE(Ok(Activate("a", "checkout_1")).already_active);
  // The history shows one top-up, active, under its new key.
  HistoryPage page;
  HistoryQuery q;
  q.kind = Kind::kTopUp;
  ASSERT_TRUE(ReadHistory(ledger_->store(), "a", q, &page).ok());
  ASSERT_EQ(page.items.size(), 1u);
  std::string json;
  AppendTransactionJson(page.items[0], &json);
  EXPECT_NE(json.find("\"key\":\"pi_real\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"active\":true"), std::string::npos) << json;
}

TEST_F(LedgerTest, ActivatingAnotherUsersPaymentIdIsAConflict) {
  Ok(TopUp("b", 10, "pi_taken"));
  Ok(FromJson(R"({"type":"top_up","user_id":"a","amount":300,"pending":true,"key":"co"})"));
  EXPECT_EQ(Run(Activate("a", "co", "pi_taken")).code, ErrorCode::kConflict);
  EXPECT_EQ(ledger_->PeekBalance("a").balance, 0);
}

TEST_F(LedgerTest, PendingTopUpsCannotBeRefunded) {
  Ok(FromJson(R"({"type":"top_up","user_id":"a","amount":300,"pending":true,"key":"pi_p"})"));
  EXPECT_EQ(Run(Refund("pi_p", 100, "re")).code, ErrorCode::kNotFound);
}

TEST_F(LedgerTest, RefundUserMustMatchTheTopUp) {
  Ok(TopUp("a", 300, "pi_a"));
  Command r = Refund("pi_a", 100, "re");
  r.user_id = "mallory";
  EXPECT_EQ(Run(r).code, ErrorCode::kNotFound);
  r.user_id = "a";
  EXPECT_EQ(Ok(r).balance, 200);
}

TEST_F(LedgerTest, SkippedRefundsAppendNothing) {
  Ok(TopUp("a", 300, "pi_a"));
  Command r = Refund("pi_a", 100, "re");
  r.has_status = true;
  r.status = "pending";
  Outcome o = Ok(r);
  EXPECT_TRUE(o.skipped);
  EXPECT_EQ(o.seq, 0u);
  EXPECT_EQ(ledger_->Stats().events, 1u);
  r.payment_key = "pi_unknown";
  EXPECT_TRUE(Ok(r).skipped);
}

TEST_F(LedgerTest, DisputeLifecycle) {
  Ok(TopUp("a", 1000, "pi_a"));
  Outcome open = Ok(Dispute("pi_a", "dp_1", 400, "needs_response"));
  EXPECT_EQ(open.decision, "accept");
  EXPECT_EQ(open.amount, -400);
  EXPECT_EQ(open.applied, 0);
  Outcome same = Ok(Dispute("pi_a", "dp_1", 400, "needs_response"));
  EXPECT_TRUE(same.duplicate);
  EXPECT_EQ(same.seq, open.seq);
  Outcome review = Ok(Dispute("pi_a", "dp_1", 400, "under_review"));
  EXPECT_GT(review.seq, open.seq);
  Outcome lost = Ok(Dispute("pi_a", "dp_1", 400, "lost"));
  EXPECT_EQ(lost.applied, -400);
  EXPECT_EQ(lost.balance, 600);
  EXPECT_EQ(Run(Dispute("pi_a", "dp_1", 400, "won")).code, ErrorCode::kConflict);
  // Lost disputes count against the top-up like refunds.
  EXPECT_EQ(Run(Refund("pi_a", 601, "re_x")).code, ErrorCode::kRefundExceedsTopup);
  EXPECT_EQ(Ok(Refund("pi_a", 600, "re_y")).balance, 0);
  std::string json;
  ASSERT_TRUE(DisputesJson(ledger_->store(), "a", &json).ok());
  EXPECT_NE(json.find("\"status\":\"lost\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"open\":false"), std::string::npos) << json;
}

TEST_F(LedgerTest, AdjustSetsTheBalanceAndIsIdempotentByTarget) {
  Ok(TopUp("a", 100, "pi"));
  Command adj = Adjust("a", 5000);
  adj.key = "migration-a";
  Outcome o = Ok(adj);
  EXPECT_EQ(o.applied, 4900);
  Ok(Usage("a", 1000));
  Outcome again = Ok(adj);
  EXPECT_TRUE(again.duplicate);
  EXPECT_EQ(ledger_->PeekBalance("a").balance, 4000);
}

TEST_F(LedgerTest, ATopUpClampsAtIntMax) {
  Ok(Adjust("rich", 2147483000));
  Outcome o = Ok(TopUp("rich", 10000, "pi"));
  EXPECT_EQ(o.balance, 2147483647);
  EXPECT_EQ(o.applied, 647);
  EXPECT_EQ(o.amount, 10000);
}

TEST_F(LedgerTest, TimesNeverGoBackwardsForAUser) {
  clock_.Set("2026-05-01T10:00:00Z");
  Outcome a = Ok(Grant("a", 1));
  clock_.Set("2026-04-01T10:00:00Z");  // the clock stepped back
  Outcome b = Ok(Grant("a", 1));
  EXPECT_EQ(b.time_us, a.time_us);
  Command c = Grant("a", 1);
  c.has_time = true;
  c.time_us = *ParseTime("2026-06-01T00:00:00Z");
  EXPECT_EQ(FormatTime(Ok(c).time_us), "2026-06-01T00:00:00.000000Z");
}

TEST_F(LedgerTest, HistoryPagesNewestFirstWithFilters) {
  for (int i = 0; i < 25; ++i) Ok(Grant("a", 1 + i));
  Ok(Usage("a", 3));
  Ok(Grant("b", 7));
  HistoryQuery q;
  q.limit = 10;
  HistoryPage page;
  ASSERT_TRUE(ReadHistory(ledger_->store(), "a", q, &page).ok());
  ASSERT_EQ(page.items.size(), 10u);
  EXPECT_EQ(page.items[0].event.seq, 26u);
  EXPECT_EQ(page.items[0].event.kind, Kind::kUsage);
  ASSERT_TRUE(page.next_before_seq.has_value());
  EXPECT_EQ(*page.next_before_seq, 17u);
  q.before_seq = *page.next_before_seq;
  ASSERT_TRUE(ReadHistory(ledger_->store(), "a", q, &page).ok());
  EXPECT_EQ(page.items.front().event.seq, 16u);
  q.before_seq = 7;
  ASSERT_TRUE(ReadHistory(ledger_->store(), "a", q, &page).ok());
  EXPECT_EQ(page.items.size(), 6u);
  EXPECT_FALSE(page.next_before_seq.has_value());
  HistoryQuery usage;
  usage.kind = Kind::kUsage;
  ASSERT_TRUE(ReadHistory(ledger_->store(), "a", usage, &page).ok());
  ASSERT_EQ(page.items.size(), 1u);
  EXPECT_EQ(page.items[0].event.amount, -3);
  ASSERT_TRUE(ReadHistory(ledger_->store(), "nobody", HistoryQuery{}, &page).ok());
  EXPECT_TRUE(page.items.empty());
}

TEST_F(LedgerTest, LongHistoriesFollowTheLinksFromEveryStartAcrossRestarts) {
  // `by_user` indexes one event in kByUserEvery of a user; every other event
  // is reached through the links. Restarts reset the writer's count.
  std::vector<Seq> a_seqs;  // a's events, oldest first
  std::vector<Amount> a_balances;
  for (int i = 0; i < 150; ++i) {
    if (i == 37 || i == 40 || i == 111) Reopen();
    Outcome o = Ok(i % 7 == 0 ? Grant("a", 10 + i) : Usage("a", 1));
    a_seqs.push_back(o.seq);
    a_balances.push_back(o.balance);
    if (i % 3 == 0) Ok(Grant("b", 1));  // another user's seqs in between
  }
  LogStore* store = ledger_->store();
  // Sparse: about one entry per kByUserEvery events of a.
  size_t indexed = 0;
  std::unique_ptr<rocksdb::Iterator> it(
      store->db()->NewIterator(rocksdb::ReadOptions(), store->by_user_cf()));
  for (it->Seek(std::string("a") + '\0'); it->Valid() && it->key().starts_with("a"); it->Next()) {
    ++indexed;
  }
  EXPECT_GE(indexed, 150 / kByUserEvery - 3);
  EXPECT_LE(indexed, 150 / kByUserEvery + 1);
  Seq last = ledger_->Stats().last_seq;
  for (Seq before = 1; before <= last + 1; ++before) {
    std::vector<Seq> want;
    for (auto s = a_seqs.rbegin(); s != a_seqs.rend() && want.size() < 20; ++s) {
      if (*s < before) want.push_back(*s);
    }
    ASSERT_EQ(UserSeqs(store, "a", before, 20), want) << "before seq " << before;
  }
  std::vector<Seq> all = UserSeqs(store, "a", 0, 1000);
  EXPECT_EQ(all, std::vector<Seq>(a_seqs.rbegin(), a_seqs.rend()));
  for (size_t i = 0; i < a_seqs.size(); ++i) {
    BalancePoint p;
    ASSERT_TRUE(ReadBalanceAt(store, "a", a_seqs[i], 0, &p).ok());
    EXPECT_EQ(p.seq, a_seqs[i]);
    EXPECT_EQ(p.balance, a_balances[i]) << "at seq " << a_seqs[i];
  }
  // Paging the whole history 7 at a time visits every event once.
  HistoryQuery q;
  q.limit = 7;
  std::vector<Seq> paged;
  for (;;) {
    HistoryPage page;
    ASSERT_TRUE(ReadHistory(store, "a", q, &page).ok());
    for (const auto& tx : page.items) paged.push_back(tx.event.seq);
    if (!page.next_before_seq) break;
    q.before_seq = *page.next_before_seq;
  }
  EXPECT_EQ(paged, all);
}

// Submits every batch at once, in order, and waits for all their answers.
std::vector<std::vector<Outcome>> SubmitAll(Ledger* ledger,
                                            std::vector<std::vector<Command>> batches) {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::vector<Outcome>> outs(batches.size());
  size_t answered = 0;
  for (size_t b = 0; b < batches.size(); ++b) {
    ledger->Submit(std::move(batches[b]), [&, b](std::vector<Outcome> o) {
      std::lock_guard<std::mutex> lock(mu);
      outs[b] = std::move(o);
      ++answered;
      cv.notify_all();
    });
  }
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return answered == outs.size(); });
  return outs;
}

TEST(LedgerPipeline, AGroupDecidedWhileTheOneBeforeIsWrittenSeesItsEventsAndStates) {
  // Groups of 300 commands (>= the pipelining threshold) are written and
  // synced by other threads while the writer decides the next one on top of
  // them: their keys, payments and user states must count although not yet
  // in RocksDB (or in it, but not durable).
  TempDir dir;
  LedgerOptions options;
  options.group_commands_max = 300;
  std::unique_ptr<Ledger> ledger = OpenLedger(dir.path(), options);
  auto user = [](int i) { return "u" + std::to_string(i % 10); };
  std::vector<std::vector<Command>> batches(4);
  for (int i = 0; i < 300; ++i) {
    batches[0].push_back(TopUp(user(i), 100, "pi_" + std::to_string(i)));
    batches[1].push_back(TopUp(user(i), 100, "pi_" + std::to_string(i)));  // duplicates
    batches[2].push_back(Refund("pi_" + std::to_string(i), 40, "re_" + std::to_string(i)));
    batches[3].push_back(i % 2 == 0 ? Usage(user(i), 1, "use_" + std::to_string(i))
                                    : Refund("pi_" + std::to_string(i - 1), 40,
                                             "re_" + std::to_string(i - 1)));  // duplicates
  }
  // All four at once: each next group is decided while the one before syncs.
  std::vector<std::vector<Outcome>> outs = SubmitAll(ledger.get(), std::move(batches));
  EXPECT_GE(ledger->metrics().overlapped_groups.load(), 1u);
  for (int i = 0; i < 300; ++i) {
    ASSERT_TRUE(outs[0][i].ok() && !outs[0][i].duplicate) << i;
    EXPECT_TRUE(outs[1][i].ok() && outs[1][i].duplicate) << i;
    EXPECT_EQ(outs[1][i].seq, outs[0][i].seq);
    ASSERT_TRUE(outs[2][i].ok() && !outs[2][i].duplicate) << ErrorCodeName(outs[2][i].code);
    if (i % 2 == 1) {
      EXPECT_TRUE(outs[3][i].duplicate) << i;
      EXPECT_EQ(outs[3][i].seq, outs[2][i - 1].seq);
    } else {
      EXPECT_TRUE(outs[3][i].ok() && !outs[3][i].duplicate) << i;
    }
  }
  // Each user: 30 top-ups of 100 and 30 refunds of 40; the even ones 30 usages of 1.
  for (int u = 0; u < 10; ++u) {
    EXPECT_EQ(ledger->PeekBalance(user(u)).balance, u % 2 == 0 ? 1770 : 1800) << u;
  }
  EXPECT_EQ(ledger->Stats().last_seq, 300u + 300u + 150u);
  uint64_t hash = ledger->Stats().state_hash;
  ledger.reset();
  ledger = OpenLedger(dir.path(), options);  // replay agrees with what was answered
  EXPECT_EQ(ledger->Stats().state_hash, hash);
  EXPECT_EQ(ledger->PeekBalance("u3").balance, 1800);
  EXPECT_EQ(ledger->PeekBalance("u4").balance, 1770);
}

TEST(LedgerPipeline, GroupsDecidedOnTopOfSeveralInFlightAnswerAsOneAtATime) {
  // Sixteen batches of 300 at once: each group is decided while up to
  // several before it are being written or synced. Every answer must be the
  // one a command-at-a-time ledger gives (a usage needs the balance the
  // groups in flight left), and a reopened ledger must agree.
  TempDir dir;
  LedgerOptions options;
  options.group_commands_max = 300;
  std::unique_ptr<Ledger> ledger = OpenLedger(dir.path(), options);
  constexpr int kBatches = 16;
  std::vector<std::vector<Command>> batches(kBatches);
  for (int b = 0; b < kBatches; ++b) {
    for (int j = 0; j < 300; ++j) {
      std::string user = "u" + std::to_string(j % 10);
      std::string key = std::to_string(b) + "-" + std::to_string(j);
      batches[b].push_back((b * 300 + j) % 3 == 0 ? Usage(user, 7, "use-" + key)
                                                  : TopUp(user, 2, "pi-" + key));
    }
  }
  std::vector<std::vector<Command>> sent = batches;
  std::vector<std::vector<Outcome>> outs = SubmitAll(ledger.get(), std::move(batches));
  EXPECT_GE(ledger->metrics().overlapped_groups.load(), 2u);
  std::map<std::string, Amount> balance;
  Seq seq = 0;
  for (int b = 0; b < kBatches; ++b) {
    for (int j = 0; j < 300; ++j) {
      const Command& c = sent[b][j];
      const Outcome& o = outs[b][j];
      Amount& expected = balance[c.user_id];
      if (c.kind == Kind::kUsage && expected < c.amount) {
        EXPECT_EQ(o.code, ErrorCode::kInsufficientBalance) << b << "/" << j;
        continue;
      }
      expected += c.kind == Kind::kUsage ? -c.amount : c.amount;
      ASSERT_TRUE(o.ok()) << b << "/" << j << ": " << ErrorCodeName(o.code);
      EXPECT_EQ(o.seq, ++seq) << b << "/" << j;
      EXPECT_EQ(o.balance, expected) << b << "/" << j;
    }
  }
  ASSERT_EQ(ledger->Stats().last_seq, seq);
  uint64_t hash = ledger->Stats().state_hash;
  ledger.reset();
  ledger = OpenLedger(dir.path(), options);
  EXPECT_EQ(ledger->Stats().state_hash, hash);
  for (const auto& [user, amount] : balance) EXPECT_EQ(ledger->PeekBalance(user).balance, amount);
}

TEST(LedgerCallerWrites, OneClientAtATimeIsWrittenByTheCallerAndAnsweredBeforeSubmitReturns) {
  // One command at a time: once a few groups found nothing else waiting, a
  // caller that finds the writer idle writes its own group, and its answer
  // (durable) comes before Submit returns. The log replays to the same state.
  TempDir dir;
  std::unique_ptr<Ledger> ledger = OpenLedger(dir.path());
  ASSERT_TRUE(ledger->Execute(TopUp("a", 100, "pi_0")).ok());
  for (int i = 1; i <= 20; ++i) {
    Outcome o = ledger->Execute(Usage("a", 2, "use_" + std::to_string(i)));
    ASSERT_TRUE(o.ok()) << ErrorCodeName(o.code);
    EXPECT_EQ(o.seq, Seq(i + 1));
    EXPECT_EQ(o.balance, 100 - 2 * i);
  }
  // Each after a pause, so that the writer is back waiting (else the
  // submission is queued for it, which is also right, only not this path).
  int answered_in_submit = 0;
  for (int i = 21; i <= 40; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::promise<Outcome> answer;
    std::atomic<bool> answered{false};
    ledger->Submit(
        {Usage("a", 1, "use_" + std::to_string(i))},
        [&](std::vector<Outcome> outs) {
          answered = true;
          answer.set_value(std::move(outs.at(0)));
        },
        /*caller_free=*/true);
    answered_in_submit += answered ? 1 : 0;
    Outcome o = answer.get_future().get();
    ASSERT_TRUE(o.ok()) << ErrorCodeName(o.code);
    EXPECT_EQ(o.seq, Seq(i + 1));
    EXPECT_EQ(o.balance, 60 - (i - 20));
  }
  EXPECT_GT(answered_in_submit, 0) << "no caller wrote its own group";
  EXPECT_GE(ledger->metrics().caller_groups.load(), uint64_t(answered_in_submit));
  EXPECT_EQ(ledger->metrics().groups.load(), 41u);                 // one each, whoever wrote it
  EXPECT_TRUE(ledger->Execute(Usage("a", 2, "use_1")).duplicate);  // its key was indexed
  // A large submission goes to the writer, quiet or not (its group is handed
  // on, overlapping the caller's next one).
  uint64_t caller_groups = ledger->metrics().caller_groups.load();
  std::vector<Command> batch;
  for (int i = 0; i < 300; ++i) batch.push_back(Grant("b" + std::to_string(i % 3), 1));
  for (const Outcome& o : ledger->ExecuteBatch(std::move(batch))) ASSERT_TRUE(o.ok());
  EXPECT_EQ(ledger->metrics().caller_groups.load(), caller_groups);
  EXPECT_EQ(ledger->PeekBalance("b2").balance, 100);
  uint64_t hash = ledger->Stats().state_hash;
  ledger.reset();
  ledger = OpenLedger(dir.path());
  EXPECT_EQ(ledger->Stats().state_hash, hash);
  EXPECT_EQ(ledger->PeekBalance("a").balance, 40);
  EXPECT_EQ(ledger->PeekBalance("b0").balance, 100);
  EXPECT_EQ(ledger->Stats().last_seq, 341u);
}

TEST(LedgerCallerWrites, OffLeavesEveryGroupToTheWriter) {
  TempDir dir;
  LedgerOptions options;
  options.caller_writes = false;
  std::unique_ptr<Ledger> ledger = OpenLedger(dir.path(), options);
  for (int i = 0; i < 20; ++i) {
    // Paused as in the test above, where these would be the caller's.
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    ASSERT_TRUE(ledger->Execute(TopUp("a", 1)).ok());
  }
  EXPECT_EQ(ledger->metrics().caller_groups.load(), 0u);
  EXPECT_EQ(ledger->PeekBalance("a").balance, 20);
}

TEST(LedgerCallerWrites, AThreadStreamingSubmissionsNeverWaitsOnTheirSync) {
  // A thread that submits without waiting for answers is the only client,
  // so the writer finds nothing else waiting. Were it to write and sync
  // each submission itself, it would stream no faster than one fdatasync a
  // command. Submit leaves them to the writer, which groups them.
  TempDir dir;
  std::unique_ptr<Ledger> ledger = OpenLedger(dir.path());
  for (int i = 0; i < 8; ++i) {  // quiet groups: one client at a time
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    ASSERT_TRUE(ledger->Execute(TopUp("s", 1000, "pi_" + std::to_string(i))).ok());
  }
  uint64_t by_caller = ledger->metrics().caller_groups.load();
  ASSERT_GT(by_caller, 0u) << "Execute, alone, should have written its own groups";
  std::vector<std::vector<Command>> stream;
  for (int i = 0; i < 200; ++i) stream.push_back({Usage("s", 1, "st_" + std::to_string(i))});
  std::vector<std::vector<Outcome>> outs = SubmitAll(ledger.get(), std::move(stream));
  EXPECT_EQ(ledger->metrics().caller_groups.load(), by_caller) << "a streamed submission synced";
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(outs[i].at(0).ok()) << i;
    EXPECT_EQ(outs[i][0].balance, 8000 - (i + 1)) << i;
    EXPECT_EQ(outs[i][0].seq, Seq(9 + i)) << i;
  }
}

TEST(LedgerCallerWrites, ThreadsTakingTurnsWithTheWriterKeepOneOrderAndEveryBalance) {
  // Rounds in which all threads run at once (the writer takes the groups)
  // alternate with rounds in which one thread runs alone (after a few quiet
  // groups, its own thread writes them): every command must get its own
  // seq, without gaps, each thread's usages must see its top-ups, and a
  // reopened ledger must agree with what was answered.
  TempDir dir;
  std::unique_ptr<Ledger> ledger = OpenLedger(dir.path());
  constexpr int kThreads = 4;
  constexpr int kRounds = 12;
  constexpr int kPerRound = 8;  // a top-up and a usage each
  std::vector<std::vector<Outcome>> outs(kThreads);
  std::barrier sync(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::string user = "u" + std::to_string(t);
      for (int r = 0; r < kRounds; ++r) {
        sync.arrive_and_wait();
        bool runs = r % 2 == 0 || (r / 2) % kThreads == t;  // odd rounds: one thread alone
        for (int i = 0; runs && i < kPerRound; ++i) {
          std::string n = std::to_string(r) + "-" + std::to_string(i);
          outs[t].push_back(ledger->Execute(TopUp(user, 10, "pi-" + user + "-" + n)));
          outs[t].push_back(ledger->Execute(Usage(user, 7, "use-" + n)));
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  std::vector<Seq> seqs;
  for (int t = 0; t < kThreads; ++t) {
    for (size_t k = 0; k < outs[t].size(); k += 2) {
      const Outcome& top = outs[t][k];
      const Outcome& use = outs[t][k + 1];
      Amount before = 3 * static_cast<Amount>(k / 2);
      ASSERT_TRUE(top.ok() && use.ok()) << t << "/" << k;
      EXPECT_EQ(top.balance, before + 10) << t << "/" << k;
      EXPECT_EQ(use.balance, before + 3) << t << "/" << k;
      EXPECT_LT(top.seq, use.seq);
      seqs.push_back(top.seq);
      seqs.push_back(use.seq);
    }
  }
  std::sort(seqs.begin(), seqs.end());
  for (size_t i = 0; i < seqs.size(); ++i) ASSERT_EQ(seqs[i], Seq(i + 1));
  ASSERT_EQ(ledger->Stats().last_seq, Seq(seqs.size()));
  uint64_t by_caller = ledger->metrics().caller_groups.load();
  EXPECT_GT(by_caller, 0u) << "no thread alone wrote its own group";
  EXPECT_GT(ledger->metrics().groups.load(), by_caller) << "the writer wrote none";
  uint64_t hash = ledger->Stats().state_hash;
  ledger.reset();
  ledger = OpenLedger(dir.path());
  EXPECT_EQ(ledger->Stats().state_hash, hash);
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(ledger->PeekBalance("u" + std::to_string(t)).balance,
              3 * static_cast<Amount>(outs[t].size() / 2));
  }
}

TEST(LedgerWal, WriteAheadLogFilesStayNearTheirBound) {
  // Meta is written once at creation; unless RocksDB is told to flush it,
  // that one entry keeps every WAL file since alive (and a crash replays
  // them all). With a 1 MiB bound, ~10 MB of events leave about 1 MiB.
  TempDir dir;
  LedgerOptions options;
  options.wal_bytes_max = 1 << 20;
  std::unique_ptr<Ledger> ledger = OpenLedger(dir.path(), options);
  ASSERT_TRUE(ledger->Execute(Grant("u", 1000000000)).ok());
  for (int b = 0; b < 40; ++b) {
    for (const Outcome& o : ledger->ExecuteBatch(PaddedUsages("u", 500, 300))) {
      ASSERT_TRUE(o.ok());
    }
  }
  auto wal_bytes = [&dir] {
    uint64_t bytes = 0;
    for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
      if (WalPool::IsWalFile(entry.path().string())) bytes += entry.file_size();
    }
    return bytes;
  };
  // Flushes run in the background, and RocksDB checks the bound only when
  // it writes. On a loaded machine (sanitizers, parallel tests) writes can
  // run ahead of a flush for a while, so a few small writes give it the
  // chance to catch up. With meta pinning the oldest file, none would help.
  Seq extra = 0;
  for (int i = 0; i < 200 && wal_bytes() >= (4u << 20); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ASSERT_TRUE(ledger->Execute(Grant("v", 1)).ok());
    ++extra;
  }
  EXPECT_LT(wal_bytes(), 4u << 20) << "after " << extra << " small writes";
  EXPECT_EQ(ledger->PeekBalance("u").balance, 1000000000 - 20000);
  uint64_t hash = ledger->Stats().state_hash;
  ledger.reset();
  ledger = OpenLedger(dir.path(), options);
  EXPECT_EQ(ledger->Stats().state_hash, hash);
  EXPECT_EQ(ledger->Stats().last_seq, 20001u + extra);
}

TEST(LedgerStore, ACleanCloseLeavesNoCompactionForTheNextOpenToRun) {
  // Each clean close flushes a level-0 table into every family written;
  // the fourth in the log (the eighth sorted run in the indexes, which
  // compact tiered) makes a compaction due. Closing must finish it, not
  // abort it for the next open to run while clients are served.
  TempDir dir;
  for (int run = 0; run < 9; ++run) {
    {
      std::unique_ptr<Ledger> ledger = OpenLedger(dir.path());
      std::vector<Command> batch;
      for (int i = 0; i < 20000; ++i) {
        batch.push_back(Grant("u" + std::to_string(i), 10,
                              "run" + std::to_string(run) + "-" + std::to_string(i)));
      }
      for (const Outcome& o : ledger->ExecuteBatch(std::move(batch))) ASSERT_TRUE(o.ok());
    }
    std::unique_ptr<LogStore> store;
    ASSERT_TRUE(LogStore::Open(StoreOptions{dir.path(), true, false}, &store).ok());
    for (auto* cf : {store->log_cf(), store->by_user_cf(), store->by_key_cf()}) {
      uint64_t pending = 1;
      ASSERT_TRUE(store->db()->GetIntProperty(cf, "rocksdb.compaction-pending", &pending));
      rocksdb::ColumnFamilyMetaData meta;
      store->db()->GetColumnFamilyMetaData(cf, &meta);
      EXPECT_EQ(pending, 0u) << "after close " << run + 1 << ", family " << cf->GetName();
      const rocksdb::Options options = store->db()->GetOptions(cf);
      const int trigger = options.level0_file_num_compaction_trigger;
      const bool index = cf != store->log_cf();
      EXPECT_EQ(trigger, index ? 8 : 4);
      EXPECT_EQ(options.compaction_style,
                index ? rocksdb::kCompactionStyleUniversal : rocksdb::kCompactionStyleLevel);
      EXPECT_LT(meta.levels.at(0).files.size(), static_cast<size_t>(trigger))
          << "after close " << run + 1 << ", family " << cf->GetName();
    }
  }
}

TEST(LedgerStore, TheLogsTableFilesAreLz4AndReadBackByEveryReader) {
  // The log family's table files are compressed (LZ4, which Debian's
  // librocksdb has), and every reader reads them: the store, recovery, the
  // audit's full replay. (Each table file names its own compression, so the
  // uncompressed ones of directories written before 2026-12-06 read on
  // beside them.)
  TempDir dir;
  uint64_t hash = 0;
  {
    std::unique_ptr<Ledger> ledger = OpenLedger(dir.path());
    std::vector<Command> batch;
    for (int i = 0; i < 5000; ++i) {
      batch.push_back(Grant("u" + std::to_string(i % 100), 10 + i, "k" + std::to_string(i)));
    }
    for (const Outcome& o : ledger->ExecuteBatch(std::move(batch))) ASSERT_TRUE(o.ok());
    ASSERT_TRUE(ledger->store()->Flush().ok());
    rocksdb::TablePropertiesCollection tables;
    ASSERT_TRUE(
        ledger->store()->db()->GetPropertiesOfAllTables(ledger->store()->log_cf(), &tables).ok());
    ASSERT_FALSE(tables.empty());
    uint64_t raw = 0, stored = 0;
    for (const auto& [name, props] : tables) {
      EXPECT_EQ(props->compression_name, "LZ4") << name;
      raw += props->raw_key_size + props->raw_value_size;
      stored += props->data_size;
    }
    // Grants of 100 users with keys k0..k4999: 40% off (uncompressed, the
    // data blocks would be a little more than the keys and values).
    EXPECT_LT(stored * 4, raw * 3);
    hash = ledger->Stats().state_hash;
  }
  std::unique_ptr<Ledger> ledger = OpenLedger(dir.path());
  EXPECT_EQ(ledger->Stats().state_hash, hash);
  EXPECT_EQ(ledger->Stats().last_seq, 5000u);
  Event e;
  ASSERT_TRUE(ledger->store()->ReadEvent(4321, &e).ok());
  EXPECT_EQ(e.key, "k4320");
  EXPECT_EQ(e.amount, 10 + 4320);
  // The full replay of an audit, from the first record: every checksum and
  // balance, the same state.
  Projection full;
  ReplayOptions o;
  o.stop_on_problem = false;
  ReplayResult result;
  ASSERT_TRUE(ReplayLog(ledger->store()->db(), ledger->store()->log_cf(), 0, kGenesisChecksum,
                        &full, o, &result)
                  .ok());
  EXPECT_TRUE(result.problems.empty());
  EXPECT_EQ(result.events, 5000u);
  EXPECT_EQ(full.state_hash(), hash);
}

// Until 2026-12-05 the index families compacted level by level. A
// directory written then opens under their tiered compaction with every key
// and every history found, takes new ones, and compacts its old levels with
// them.
TEST(LedgerStore, KeyIndexesCompactedLevelByLevelOpenUnderTieredCompaction) {
  TempDir dir;
  auto top_ups = [](int run, int n) {
    std::vector<Command> batch;
    for (int i = 0; i < n; ++i) {
      std::string id = std::to_string(run) + "-" + std::to_string(i);
      batch.push_back(TopUp("u" + std::to_string(i % 50), 10, "pi_" + id));
    }
    return batch;
  };
  auto index_families = [](Ledger& ledger) {
    LogStore* store = ledger.store();
    return std::array{store->by_user_cf(), store->by_key_cf(), store->payments_cf()};
  };
  // u7's top-ups of 10 are at seqs 8, 58, ... (40 a run); by seq 3000, 40
  // from the first run and 20 from the second.
  auto expect_u7_at_3000 = [](Ledger& ledger) {
    BalancePoint at;
    ASSERT_TRUE(ReadBalanceAt(ledger.store(), "u7", 3000, 0, &at).ok());
    EXPECT_EQ(at.balance, 600);
    EXPECT_EQ(at.seq, 2958u);
  };
  // As the old build left them: tables in levels 1 and 3 of the three
  // families (and the rest in level 0), arranged by RocksDB under leveled
  // compaction.
  for (int run = 0; run < 3; ++run) {
    {
      std::unique_ptr<Ledger> ledger = OpenLedger(dir.path());
      for (const Outcome& o : ledger->ExecuteBatch(top_ups(run, 2000))) ASSERT_TRUE(o.ok());
    }
    if (run == 2) break;
    std::vector<std::string> names;
    ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), dir.path(), &names).ok());
    std::vector<rocksdb::ColumnFamilyDescriptor> families;
    for (const auto& name : names) families.emplace_back(name, rocksdb::ColumnFamilyOptions());
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::DBOptions(), dir.path(), families, &handles, &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    for (size_t i = 0; i < names.size(); ++i) {
      if (names[i] != "by_key" && names[i] != "payments" && names[i] != "by_user") continue;
      rocksdb::ColumnFamilyMetaData meta;
      db->GetColumnFamilyMetaData(handles[i], &meta);
      std::vector<std::string> level0;
      for (const auto& f : meta.levels.at(0).files) level0.push_back(f.name);
      ASSERT_FALSE(level0.empty()) << names[i];
      ASSERT_TRUE(db->CompactFiles(rocksdb::CompactionOptions(), handles[i], level0,
                                   /*output_level=*/run == 0 ? 3 : 1)
                      .ok());
    }
    for (auto* h : handles) ASSERT_TRUE(db->DestroyColumnFamilyHandle(h).ok());
    ASSERT_TRUE(db->Close().ok());
  }
  auto levels_with_tables = [](LogStore* store, rocksdb::ColumnFamilyHandle* cf) {
    rocksdb::ColumnFamilyMetaData meta;
    store->db()->GetColumnFamilyMetaData(cf, &meta);
    std::vector<int> levels;
    for (const auto& level : meta.levels) {
      if (!level.files.empty()) levels.push_back(level.level);
    }
    return levels;
  };
  {
    std::unique_ptr<Ledger> ledger = OpenLedger(dir.path());
    for (auto* cf : index_families(*ledger)) {
      EXPECT_EQ(levels_with_tables(ledger->store(), cf), (std::vector<int>{0, 1, 3}))
          << cf->GetName();
    }
    // Every key of every run is found again: a duplicate answer, or a
    // conflict for the payment id under another user.
    for (int run = 0; run < 3; ++run) {
      for (const Outcome& o : ledger->ExecuteBatch(top_ups(run, 2000))) {
        ASSERT_TRUE(o.duplicate) << "run " << run << ": " << o.message;
      }
      EXPECT_EQ(ledger->Execute(TopUp("v", 10, "pi_" + std::to_string(run) + "-7")).code,
                ErrorCode::kConflict);
    }
    EXPECT_EQ(ledger->Stats().events, 6000u);
    // u7's history through by_user.
    expect_u7_at_3000(*ledger);
    HistoryQuery q;
    q.limit = 1000;
    q.before_seq = 3000;
    HistoryPage page;
    ASSERT_TRUE(ReadHistory(ledger->store(), "u7", q, &page).ok());
    ASSERT_EQ(page.items.size(), 60u);
    EXPECT_EQ(page.items.front().event.seq, 2958u);
    EXPECT_EQ(page.items.back().event.seq, 8u);
  }
  // New keys, and closes enough to merge the sorted runs (800 top-ups: 16 a
  // user, so each close flushes a table into by_user too).
  for (int run = 3; run < 13; ++run) {
    std::unique_ptr<Ledger> ledger = OpenLedger(dir.path());
    for (const Outcome& o : ledger->ExecuteBatch(top_ups(run, 800))) ASSERT_TRUE(o.ok());
  }
  std::unique_ptr<Ledger> ledger = OpenLedger(dir.path());
  for (auto* cf : index_families(*ledger)) {
    uint64_t pending = 1;
    ASSERT_TRUE(ledger->store()->db()->GetIntProperty(cf, "rocksdb.compaction-pending", &pending));
    EXPECT_EQ(pending, 0u) << cf->GetName();
    EXPECT_NE(levels_with_tables(ledger->store(), cf), (std::vector<int>{0, 1, 3}))
        << cf->GetName() << ": the old levels were merged";
  }
  for (int run : {0, 1, 2, 12}) {
    for (const Outcome& o : ledger->ExecuteBatch(top_ups(run, 800))) {
      ASSERT_TRUE(o.duplicate) << "run " << run << ": " << o.message;
    }
  }
  EXPECT_EQ(ledger->Stats().events, 6000u + 10 * 800);
  expect_u7_at_3000(*ledger);  // read through the merged runs
}

Command NodeUsage(const std::string& exec, Amount amount, const std::string& node) {
  return FromJson(R"({"type":"usage","user_id":"a","amount":)" + std::to_string(amount) +
                  R"(,"metadata":{"graph_exec_id":")" + exec + R"(","node_id":")" + node +
                  R"(","reason":"Ran block"}})");
}

TEST_F(LedgerTest, HistoryGroupsUsageByGraphExecution) {
  Ok(TopUp("a", 1000, "pi_a"));   // seq 1
  Ok(NodeUsage("g1", 10, "n1"));  // 2
  clock_.Advance(5'000'000);
  Ok(NodeUsage("g2", 7, "n1"));   // 3 (interleaved with g1)
  Ok(NodeUsage("g1", 20, "n2"));  // 4
  Ok(Usage("a", 3));              // 5 no graph: its own line
  clock_.Advance(1'000'000);
  Ok(NodeUsage("g1", 30, "n3"));  // 6
  Ok(Grant("a", 50));             // 7
  Ok(NodeUsage("g3", 1, "n1"));   // 8
  HistoryQuery q;
  q.group_by_graph_exec = true;
  HistoryPage page;
  ASSERT_TRUE(ReadHistory(ledger_->store(), "a", q, &page).ok());
  // Lines newest first: g3, grant, g1 (3 nodes), plain usage, g2, top-up.
  ASSERT_EQ(page.items.size(), 6u);
  std::vector<Seq> seqs;
  for (const auto& tx : page.items) seqs.push_back(tx.event.seq);
  EXPECT_EQ(seqs, (std::vector<Seq>{8, 7, 6, 5, 3, 1}));
  const UsageGroup& g1 = page.groups[2];
  EXPECT_EQ(g1.graph_exec_id, "g1");
  EXPECT_EQ(g1.node_count, 3u);
  EXPECT_EQ(g1.amount, -60);
  EXPECT_EQ(g1.applied, -60);
  EXPECT_EQ(g1.first_seq, 2u);
  EXPECT_EQ(page.items[2].event.time_us - g1.first_time, 6'000'000);
  EXPECT_EQ(page.groups[3].node_count, 0u);  // the usage without graph_exec_id
  std::string json = HistoryPageJson(page);
  EXPECT_NE(json.find(R"("amount":-60,"applied":-60,"running_balance":930,)"), std::string::npos)
      << json;
  EXPECT_NE(json.find(R"("graph_exec_id":"g1","node_count":3,"first_seq":2,)"), std::string::npos);

  // Paging counts lines. A page covers a range of seqs: an execution whose
  // nodes straddle the boundary shows on both pages, each line with its
  // page's nodes.
  q.limit = 3;
  ASSERT_TRUE(ReadHistory(ledger_->store(), "a", q, &page).ok());
  ASSERT_EQ(page.items.size(), 3u);
  EXPECT_EQ(page.groups[2].node_count, 1u);  // g1's newest node only
  ASSERT_TRUE(page.next_before_seq.has_value());
  EXPECT_EQ(*page.next_before_seq, 6u);
  q.before_seq = *page.next_before_seq;
  ASSERT_TRUE(ReadHistory(ledger_->store(), "a", q, &page).ok());
  seqs.clear();
  for (const auto& tx : page.items) seqs.push_back(tx.event.seq);
  EXPECT_EQ(seqs, (std::vector<Seq>{5, 4, 3}));
  EXPECT_EQ(page.groups[1].node_count, 2u);  // g1's nodes at seqs 4 and 2
  EXPECT_EQ(page.groups[1].amount, -30);
  ASSERT_TRUE(page.next_before_seq.has_value());
  EXPECT_EQ(*page.next_before_seq, 2u);
  q.before_seq = 2;
  ASSERT_TRUE(ReadHistory(ledger_->store(), "a", q, &page).ok());
  ASSERT_EQ(page.items.size(), 1u);
  EXPECT_EQ(page.items[0].event.seq, 1u);
  EXPECT_FALSE(page.next_before_seq.has_value());
  // Filters apply before grouping.
  HistoryQuery usage_only;
  usage_only.group_by_graph_exec = true;
  usage_only.kind = Kind::kUsage;
  ASSERT_TRUE(ReadHistory(ledger_->store(), "a", usage_only, &page).ok());
  EXPECT_EQ(page.items.size(), 4u);
}

TEST_F(LedgerTest, BalanceAtASeqOrTimeIsWhatTheEngineAnsweredThen) {
  struct Seen {
    Seq seq;
    TimeUs time;
    Amount balance;
  };
  std::vector<Seen> seen;
  auto record = [&](Command c) {
    Outcome o = Ok(std::move(c));
    seen.push_back({o.seq, o.time_us, ledger_->PeekBalance("a").balance});
    clock_.Advance(1'000'000);
  };
  record(TopUp("a", 500, "pi_1"));
  Ok(Grant("other", 5));  // another user's seq in between
  record(Usage("a", 120));
  record(FromJson(R"({"type":"top_up","user_id":"a","amount":70,"pending":true,"key":"pi_2"})"));
  record(Activate("a", "pi_2"));
  record(RefundRequest("pi_1", "not needed"));
  record(Refund("pi_1", 100));
  record(Adjust("a", 2147483647));
  record(Usage("a", 1));
  for (const Seen& s : seen) {
    BalancePoint p;
    ASSERT_TRUE(ReadBalanceAt(ledger_->store(), "a", s.seq, 0, &p).ok());
    EXPECT_TRUE(p.exists);
    EXPECT_EQ(p.balance, s.balance) << "at seq " << s.seq;
    EXPECT_EQ(p.seq, s.seq);
    ASSERT_TRUE(ReadBalanceAt(ledger_->store(), "a", 0, s.time + 999'999, &p).ok());
    EXPECT_EQ(p.balance, s.balance) << "at " << FormatTime(s.time);
  }
  // The refund request moved nothing: updated_at is the activation's time.
  BalancePoint p;
  ASSERT_TRUE(ReadBalanceAt(ledger_->store(), "a", seen[4].seq, 0, &p).ok());
  EXPECT_EQ(p.updated_at, seen[3].time);
  // Before the user's first event: no balance yet. Another user's seq
  // between two of a's events answers a's balance at that point.
  ASSERT_TRUE(ReadBalanceAt(ledger_->store(), "a", 0, seen[0].time - 1, &p).ok());
  EXPECT_FALSE(p.exists);
  EXPECT_EQ(BalanceJson("a", p), R"({"user_id":"a","balance":0,"updated_at":null,"seq":0})");
  ASSERT_TRUE(ReadBalanceAt(ledger_->store(), "a", 2, 0, &p).ok());
  EXPECT_EQ(p.balance, 500);
  EXPECT_EQ(p.seq, 1u);
}

TEST_F(LedgerTest, BatchesDecideEachCommandAlone) {
  std::vector<Command> batch = {TopUp("a", 100, "pi"), Usage("a", 500), Usage("a", 60),
                                TopUp("b", 1, "pi")};
  auto outs = ledger_->ExecuteBatch(batch);
  ASSERT_EQ(outs.size(), 4u);
  EXPECT_TRUE(outs[0].ok());
  EXPECT_EQ(outs[1].code, ErrorCode::kInsufficientBalance);
  EXPECT_EQ(outs[1].balance, 100);
  EXPECT_EQ(outs[2].balance, 40);
  EXPECT_EQ(outs[3].code, ErrorCode::kConflict);  // sees the first command's payment id
  EXPECT_EQ(ledger_->Stats().events, 2u);
}

TEST_F(LedgerTest, ARefundInTheSameBatchReadsTheTopUpDecidedJustBeforeIt) {
  // One group: each refund finds its top-up among the group's pending
  // events (none is in RocksDB yet), the newest of them included.
  auto outs = ledger_->ExecuteBatch({TopUp("a", 100, "pi_1"), Refund("pi_1", 30, "re_1"),
                                     TopUp("a", 50, "pi_2"), Refund("pi_2", 50, "re_2"),
                                     Refund("pi_1", 80, "re_3")});
  ASSERT_EQ(outs.size(), 5u);
  ASSERT_TRUE(outs[1].ok()) << outs[1].message;
  EXPECT_EQ(outs[1].balance, 70);
  ASSERT_TRUE(outs[3].ok()) << outs[3].message;
  EXPECT_EQ(outs[3].balance, 70);
  EXPECT_EQ(outs[4].code, ErrorCode::kRefundExceedsTopup);  // 30 + 80 > 100
  EXPECT_EQ(ledger_->PeekBalance("a").balance, 70);
  EXPECT_EQ(ledger_->Stats().events, 4u);
}

// After a reopen the key filters (engine/key_filter.h) are filled from the
// keys already stored: once they are ready, a lookup they answer alone must
// still find every old key and payment id (a filter that skipped the stored
// keys would take these retries for new commands), and keys written since.
TEST_F(LedgerTest, KeysAndPaymentIdsFromBeforeAReopenAreFoundOnceTheKeyFiltersAreReady) {
  // Keys in both families, each filled from what RocksDB holds.
  constexpr int kTopUps = 5000, kUsages = 3000, kUsers = 50;
  std::vector<Command> batch;
  for (int i = 0; i < kTopUps; ++i) {
    batch.push_back(TopUp("u" + std::to_string(i % kUsers), 100, "pi_" + std::to_string(i)));
  }
  for (int i = 0; i < kUsages; ++i) {
    batch.push_back(Usage("u" + std::to_string(i % kUsers), 1, "use_" + std::to_string(i)));
  }
  for (const Outcome& o : ledger_->ExecuteBatch(batch)) ASSERT_TRUE(o.ok()) << o.message;
  const uint64_t events = kTopUps + kUsages;
  ASSERT_EQ(ledger_->Stats().events, events);
  Reopen();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!ledger_->store()->KeyFiltersReady() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_TRUE(ledger_->store()->KeyFiltersReady());
  for (int i : {0, 1, 4095, 4096, 4999}) {
    Outcome dup = Ok(TopUp("u" + std::to_string(i % kUsers), 100, "pi_" + std::to_string(i)));
    EXPECT_TRUE(dup.duplicate) << i;
    EXPECT_EQ(dup.seq, static_cast<Seq>(i + 1));
    Outcome other = Run(TopUp("someone-else", 100, "pi_" + std::to_string(i)));
    EXPECT_EQ(other.code, ErrorCode::kConflict) << i;  // the payment id is taken
  }
  for (int i : {0, 2999}) {
    Outcome dup = Ok(Usage("u" + std::to_string(i % kUsers), 1, "use_" + std::to_string(i)));
    EXPECT_TRUE(dup.duplicate) << i;
    EXPECT_EQ(dup.seq, static_cast<Seq>(kTopUps + i + 1));
  }
  // pi_4321 is u21's: 100 top-ups of 100, 60 usages of 1.
  EXPECT_EQ(Ok(Refund("pi_4321", 30, "re_1")).balance, 100 * 100 - 60 - 30);
  EXPECT_EQ(Run(Refund("pi_4321", 80, "re_2")).code, ErrorCode::kRefundExceedsTopup);
  EXPECT_EQ(Run(Refund("pi_unknown", 1, "re_3")).code, ErrorCode::kNotFound);
  ASSERT_EQ(ledger_->Stats().events, events + 1);
  // Written after the open: found through the filter too.
  Ok(TopUp("u1", 5, "pi_new"));
  EXPECT_TRUE(Ok(TopUp("u1", 5, "pi_new")).duplicate);
  EXPECT_EQ(Run(TopUp("u2", 5, "pi_new")).code, ErrorCode::kConflict);
  EXPECT_EQ(ledger_->Stats().events, events + 2);
}

TEST_F(LedgerTest, TablesWrittenAndCompactedWithDirectIoReadBackWhole) {
  direct_io_ = true;
  Reopen();
  // The test's directory is on this machine's ext4, which takes O_DIRECT.
  ASSERT_TRUE(ledger_->store()->flush_direct_io());
  EXPECT_TRUE(ledger_->store()->db()->GetDBOptions().use_direct_io_for_flush_and_compaction);
  constexpr int kUsers = 30, kRounds = 100;
  std::vector<Command> batch;
  for (int r = 0; r < kRounds; ++r) {
    for (int u = 0; u < kUsers; ++u) {
      std::string user = "u" + std::to_string(u);
      batch.push_back(TopUp(user, 100 + r, "pi_" + std::to_string(r) + "_" + user));
      batch.push_back(Usage(user, 7, "use_" + std::to_string(r)));
    }
  }
  for (const Outcome& o : ledger_->ExecuteBatch(batch)) ASSERT_TRUE(o.ok()) << o.message;
  const uint64_t hash = ledger_->Stats().state_hash;
  // Every family through a flush and a full compaction: tables written, and
  // compaction's inputs read, with O_DIRECT.
  LogStore* store = ledger_->store();
  std::vector<rocksdb::ColumnFamilyHandle*> families = {store->log_cf(), store->by_user_cf(),
                                                        store->by_key_cf(), store->payments_cf()};
  ASSERT_TRUE(store->db()->Flush(rocksdb::FlushOptions(), families).ok());
  for (auto* cf : families) {
    ASSERT_TRUE(
        store->db()->CompactRange(rocksdb::CompactRangeOptions(), cf, nullptr, nullptr).ok());
  }
  Reopen();
  EXPECT_EQ(ledger_->Stats().state_hash, hash);
  EXPECT_EQ(ledger_->Stats().events, 2u * kUsers * kRounds);
  // u7: top-ups of 100..199, 100 usages of 7.
  EXPECT_EQ(ledger_->PeekBalance("u7").balance, (100 + 199) * 50 - 700);
  HistoryQuery q;
  q.limit = 3;
  HistoryPage page;
  ASSERT_TRUE(ReadHistory(ledger_->store(), "u7", q, &page).ok());
  ASSERT_EQ(page.items.size(), 3u);
  EXPECT_EQ(page.items[0].event.amount, -7);
  EXPECT_EQ(page.items[1].event.amount, 199);
  EXPECT_EQ(page.items[1].event.key, "pi_99_u7");
  // Keys and payment ids are found in the compacted tables.
  Outcome dup = Ok(TopUp("u7", 100, "pi_0_u7"));
  EXPECT_TRUE(dup.duplicate);
  EXPECT_EQ(dup.seq, 15u);  // round 0: the 8th user's top-up, after 7 pairs
  EXPECT_EQ(Run(TopUp("u8", 100, "pi_0_u7")).code, ErrorCode::kConflict);
  EXPECT_TRUE(Ok(Usage("u7", 7, "use_42")).duplicate);
}

TEST(LedgerStore, FlushesGoThroughThePageCacheUnlessToldOtherwise) {
  TempDir dir;
  StoreOptions o;
  o.dir = dir.path();
  std::unique_ptr<LogStore> store;
  ASSERT_TRUE(LogStore::Open(o, &store).ok());
  EXPECT_FALSE(store->flush_direct_io());
  EXPECT_FALSE(store->db()->GetDBOptions().use_direct_io_for_flush_and_compaction);
}

}  // namespace
}  // namespace ledger::testing
