// Snapshots and recovery on a real RocksDB: consistency under concurrent
// ingestion, fallback past damaged snapshots, retention.
#include <gtest/gtest.h>

#include <rocksdb/db.h>

#include <thread>

#include "events/codec.h"
#include "replay/replay.h"
#include "snapshots/snapshot_store.h"
#include "tests/test_support.h"

namespace ledger::testing {
namespace {

// The state hash a full replay from the first event reaches at `seq`.
uint64_t ReplayHashAt(LogStore* store, Seq seq) {
  Projection p;
  ReplayOptions o;
  o.to_seq = seq;
  ReplayResult r;
  EXPECT_TRUE(ReplayLog(store->db(), store->log_cf(), 0, kGenesisChecksum, &p, o, &r).ok());
  EXPECT_EQ(r.last_seq, seq);
  return p.state_hash();
}

void Ingest(Ledger* ledger, int threads, int per_thread) {
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([=] {
      for (int i = 0; i < per_thread; ++i) {
        std::string user = "u" + std::to_string((t * 7 + i) % 50);
        if (i % 5 == 0) {
          ledger->Execute(TopUp(user, 100, "pi-" + std::to_string(t) + "-" + std::to_string(i)));
        } else if (i % 11 == 0) {
          ledger->Execute(FromJson(R"({"type":"grant","user_id":")" + user +
                                   R"(","amount":7,"pending":true})"));
        } else {
          Command c = Usage(user, 1 + i % 9);
          c.allow_negative = true;
          ledger->Execute(c);
        }
      }
    });
  }
  for (auto& t : ts) t.join();
}

TEST(Snapshots, TakenDuringIngestionMatchAFullReplayAtTheirSeq) {
  TempDir dir;
  LedgerOptions o;
  o.snapshot_every = 300;
  auto ledger = OpenLedger(dir.path(), o);
  Ingest(ledger.get(), 8, 250);  // 2,000 events across 50 users, snapshots on the way
  uint64_t live_hash = ledger->StateHash();
  Seq last = ledger->Stats().last_seq;
  ledger.reset();  // final snapshot at `last`

  std::unique_ptr<LogStore> store;
  ASSERT_TRUE(LogStore::Open(StoreOptions{dir.path(), true, true}, &store).ok());
  auto snapshots = ListSnapshots(store->db(), store->snapshots_cf());
  ASSERT_EQ(snapshots.size(), kSnapshotsKept);  // older ones pruned
  EXPECT_EQ(snapshots.front().seq, last);
  for (const SnapshotInfo& snap : snapshots) {
    // Each snapshot is the exact state at its seq, though taken while
    // other threads kept writing.
    EXPECT_EQ(snap.state_hash, ReplayHashAt(store.get(), snap.seq)) << "seq " << snap.seq;
    Projection loaded;
    SnapshotInfo info;
    ASSERT_TRUE(LoadSnapshot(store->db(), store->snapshots_cf(), snap.seq, &loaded, &info).ok());
    EXPECT_EQ(loaded.state_hash(), snap.state_hash);
  }
  EXPECT_EQ(ReplayHashAt(store.get(), last), live_hash);
  store.reset();

  auto reopened = OpenLedger(dir.path());
  EXPECT_EQ(reopened->recovered_from_snapshot(), last);
  EXPECT_EQ(reopened->StateHash(), live_hash);
}

class SnapshotDamage : public ::testing::Test {
 protected:
  void SetUp() override {
    // Snapshots at known seqs: every 100th, taken here (a background one
    // still being written when the next is due would land a seq later on a
    // slow build), and the final one at 350 when the ledger closes.
    auto ledger = OpenLedger(dir_.path());
    for (int i = 0; i < 350; ++i) {
      if (i > 0 && i % 100 == 0) {
        ASSERT_TRUE(ledger->SnapshotNow().ok());
      }
      Command c = Usage("u" + std::to_string(i % 13), 3);
      c.allow_negative = true;
      ledger->Execute(c);
    }
    hash_ = ledger->StateHash();
  }
  std::vector<SnapshotInfo> Snapshots() {
    std::unique_ptr<LogStore> store;
    EXPECT_TRUE(LogStore::Open(StoreOptions{dir_.path(), true, true}, &store).ok());
    return ListSnapshots(store->db(), store->snapshots_cf());
  }
  void Damage(Seq seq, uint32_t part, bool truncate) {
    std::unique_ptr<LogStore> store;
    ASSERT_TRUE(LogStore::Open(StoreOptions{dir_.path(), true, false}, &store).ok());
    std::string value;
    ASSERT_TRUE(
        store->db()
            ->Get(rocksdb::ReadOptions(), store->snapshots_cf(), SnapshotKey(seq, part), &value)
            .ok());
    if (truncate) {
      value.resize(value.size() / 2);
    } else {
      value[value.size() / 2] ^= 0x20;
    }
    ASSERT_TRUE(
        store->db()
            ->Put(rocksdb::WriteOptions(), store->snapshots_cf(), SnapshotKey(seq, part), value)
            .ok());
  }
  std::unique_ptr<Ledger> Reopen() {
    LedgerOptions o;
    o.snapshot_every = 1000000;
    return OpenLedger(dir_.path(), o);
  }
  TempDir dir_;
  uint64_t hash_ = 0;
};

TEST_F(SnapshotDamage, AFlippedBitInAChunkFallsBackToTheOlderSnapshot) {
  // The ledger's close wrote one at 350 after those at 100, 200, 300: kept 200, 300, 350.
  auto snaps = Snapshots();
  ASSERT_EQ(snaps.size(), 3u);
  ASSERT_EQ(snaps[0].seq, 350u);
  ASSERT_EQ(snaps[1].seq, 300u);
  Damage(350, 1, false);
  auto ledger = Reopen();
  EXPECT_EQ(ledger->recovered_from_snapshot(), 300u);
  ASSERT_FALSE(ledger->recovery_notes().empty());
  EXPECT_NE(ledger->recovery_notes()[0].find("seq 350"), std::string::npos)
      << ledger->recovery_notes()[0];
  EXPECT_NE(ledger->recovery_notes()[0].find("falling back"), std::string::npos);
  EXPECT_EQ(ledger->StateHash(), hash_);
}

TEST_F(SnapshotDamage, ATruncatedHeaderIsSkippedAndNamed) {
  Damage(350, 0, true);
  auto ledger = Reopen();
  EXPECT_EQ(ledger->recovered_from_snapshot(), 300u);
  ASSERT_FALSE(ledger->recovery_notes().empty());
  EXPECT_NE(ledger->recovery_notes()[0].find("seq 350"), std::string::npos);
  EXPECT_EQ(ledger->StateHash(), hash_);
}

TEST_F(SnapshotDamage, AllSnapshotsDamagedReplaysFromTheStart) {
  for (const SnapshotInfo& s : Snapshots()) Damage(s.seq, 1, false);
  auto ledger = Reopen();
  EXPECT_EQ(ledger->recovered_from_snapshot(), 0u);
  EXPECT_EQ(ledger->recovery_notes().size(), 3u);
  EXPECT_EQ(ledger->StateHash(), hash_);
  EXPECT_EQ(ledger->Stats().last_seq, 350u);
}

}  // namespace
}  // namespace ledger::testing
