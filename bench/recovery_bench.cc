// Recovery benchmark (issue 3): builds a log of EVENTS events over USERS
// users, then measures snapshot write time, size and the longest writer
// stall; restart with and without a snapshot; replay speed; memory per user.
//
//   ./build/bench_recovery [--events 10000000] [--users 1000000] [--dir /work/bench-recovery]
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "engine/ledger.h"
#include "events/codec.h"
#include "replay/replay.h"
#include "snapshots/snapshot_store.h"

using namespace ledger;
using SteadyClock = std::chrono::steady_clock;

namespace {

double Since(SteadyClock::time_point t) {
  return std::chrono::duration<double>(SteadyClock::now() - t).count();
}

long RssKb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  }
  return 0;
}

Command WorkloadCommand(uint64_t i, uint64_t users) {
  Command c;
  c.user_id = "user-" + std::to_string((i * 2654435761u) % users);
  c.kind = i % 5 == 0 ? Kind::kTopUp : Kind::kUsage;
  c.amount = i % 5 == 0 ? 1000 : static_cast<Amount>(1 + i % 10);
  c.has_amount = true;
  c.allow_negative = true;
  if (c.kind == Kind::kTopUp) c.key = "pi-" + std::to_string(i);
  c.metadata = R"({"graph_exec_id":"g-)" + std::to_string(i) + R"("})";
  c.has_metadata = true;
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t events = 10000000, users = 1000000;
  std::string dir = "/work/bench-recovery";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string f = argv[i];
    if (f == "--events") events = std::strtoull(argv[i + 1], nullptr, 10);
    if (f == "--users") users = std::strtoull(argv[i + 1], nullptr, 10);
    if (f == "--dir") dir = argv[i + 1];
  }
  std::filesystem::remove_all(dir);
  LedgerOptions o;
  o.data_dir = dir;
  o.sync = false;             // building the log; sync does not change what is measured below
  o.snapshot_every = events;  // one snapshot, taken at the end while ingesting
  std::printf("building %llu events over %llu users in %s\n", (unsigned long long)events,
              (unsigned long long)users, dir.c_str());
  auto t = SteadyClock::now();
  {
    std::unique_ptr<Ledger> l;
    if (!Ledger::Open(o, &l).ok()) return 1;
    // First every user exists (so the snapshot holds USERS users).
    for (uint64_t n = 0; n < events; n += 8192) {
      std::vector<Command> batch;
      for (uint64_t i = n; i < std::min(n + 8192, events); ++i) {
        Command c = WorkloadCommand(i, users);
        if (i < users) c.user_id = "user-" + std::to_string(i);
        batch.push_back(std::move(c));
      }
      l->ExecuteBatch(std::move(batch));
    }
    std::printf("built in %.1f s (%.0f events/s, sync off)\n", Since(t),
                static_cast<double>(events) / Since(t));
    // A snapshot while ingestion goes on: time it and the longest command latency meanwhile.
    std::atomic<bool> done{false};
    double worst_ms = 0;
    std::thread load([&] {
      uint64_t i = events;
      while (!done.load()) {
        auto s = SteadyClock::now();
        l->Execute(WorkloadCommand(i++, users));
        worst_ms = std::max(worst_ms, Since(s) * 1e3);
      }
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    double before_worst = worst_ms;
    t = SteadyClock::now();
    SnapshotInfo written;
    Status s = l->SnapshotNow(&written);
    double snap_secs = Since(t);
    done = true;
    load.join();
    if (!s.ok()) std::printf("snapshot failed: %s\n", s.message().c_str());
    std::printf(
        "snapshot: %.2f s to write, %.1f MB, %llu users, writer stall max %.3f ms, "
        "worst single-command latency during it %.1f ms (%.1f ms before)\n",
        snap_secs, static_cast<double>(written.bytes) / 1e6,
        static_cast<unsigned long long>(written.user_count),
        l->metrics().snapshot_pause_max_ns.load() / 1e6, worst_ms, before_worst);
  }
  long rss0 = RssKb();
  t = SteadyClock::now();
  {
    LedgerOptions r = o;
    r.snapshot_every = 1ULL << 40;
    std::unique_ptr<Ledger> l;
    if (!Ledger::Open(r, &l).ok()) return 1;
    double secs = Since(t);
    long rss1 = RssKb();
    LedgerStats st = l->Stats();
    std::printf(
        "restart with snapshot: %.2f s (from seq %llu, %llu users); memory %.0f bytes/user\n", secs,
        (unsigned long long)l->recovered_from_snapshot(), (unsigned long long)st.users,
        (rss1 - rss0) * 1024.0 / static_cast<double>(st.users));
    // The key filters fill in the background from the open on; until then
    // each key lookup asks RocksDB.
    while (!l->store()->KeyFiltersReady()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    std::printf("key filters ready %.2f s after the open began; memory then %.0f bytes/user\n",
                Since(t), (RssKb() - rss0) * 1024.0 / static_cast<double>(st.users));
  }
  {
    std::unique_ptr<LogStore> store;
    if (!LogStore::Open(StoreOptions{dir, false, true}, &store).ok()) return 1;
    Projection p;
    ReplayResult res;
    t = SteadyClock::now();
    Status s =
        ReplayLog(store->db(), store->log_cf(), 0, kGenesisChecksum, &p, ReplayOptions{}, &res);
    double secs = Since(t);
    std::printf(
        "restart without snapshot = full replay: %.2f s for %llu events (%.0f events/s)%s\n", secs,
        (unsigned long long)res.events, static_cast<double>(res.events) / secs,
        s.ok() ? "" : " FAILED");
  }
  if (std::getenv("KEEP_BENCH_DIR") == nullptr) std::filesystem::remove_all(dir);
  return 0;
}
