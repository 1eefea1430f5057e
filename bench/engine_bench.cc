// Engine benchmarks: decide + apply + durable append with group commit, and
// reopen (full replay). Run: ./build/bench_engine --benchmark_min_time=2
// Directories go under $LEDGER_BENCH_DIR (default /tmp), on the same disk the
// server would use.
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <random>
#include <thread>

#include "engine/ledger.h"

namespace ledger {
namespace {

std::string BenchDir(const std::string& name) {
  const char* base = getenv("LEDGER_BENCH_DIR");
  std::string dir = std::string(base ? base : "/tmp") + "/ledger-bench-" + name;
  std::filesystem::remove_all(dir);
  return dir;
}

Command UsageCommand(uint64_t n) {
  Command c;
  c.kind = Kind::kUsage;
  c.user_id = "user-" + std::to_string(n % 10000);
  c.amount = 1 + static_cast<Amount>(n % 10);
  c.has_amount = true;
  c.allow_negative = true;
  c.metadata = R"({"graph_exec_id":"g-)" + std::to_string(n) + R"(","node_id":"n"})";
  c.has_metadata = true;
  return c;
}

std::unique_ptr<Ledger> g_ledger;
std::atomic<uint64_t> g_counter{0};

void OpenShared(const benchmark::State& state) {
  LedgerOptions o;
  o.data_dir = BenchDir("ingest");
  o.sync = state.range(0) != 0;
  Status s = Ledger::Open(o, &g_ledger);
  if (!s.ok()) abort();
}

void CloseShared(const benchmark::State&) {
  std::string dir = g_ledger->options().data_dir;
  g_ledger.reset();
  std::filesystem::remove_all(dir);
}

// range(0): sync on/off; range(1): commands per submission.
void BM_Ingest(benchmark::State& state) {
  size_t per_call = static_cast<size_t>(state.range(1));
  for (auto _ : state) {
    std::vector<Command> batch;
    batch.reserve(per_call);
    for (size_t i = 0; i < per_call; ++i) batch.push_back(UsageCommand(g_counter++));
    auto outs = g_ledger->ExecuteBatch(std::move(batch));
    if (!outs.front().ok()) state.SkipWithError("rejected");
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * per_call));
}
BENCHMARK(BM_Ingest)
    ->ArgNames({"sync", "per_call"})
    ->ArgsProduct({{1, 0}, {1, 100}})
    ->Threads(1)
    ->Threads(16)
    ->Setup(OpenShared)
    ->Teardown(CloseShared)
    ->UseRealTime();

// One thread streaming single commands with Submit, up to range(1) of them
// unanswered at a time (a client that pipelines), after a quiet spell of one
// command at a time: the writer groups them.
void BM_Stream(benchmark::State& state) {
  size_t window = static_cast<size_t>(state.range(1));
  for (int i = 0; i < 8; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    g_ledger->Execute(UsageCommand(g_counter++));
  }
  std::mutex mu;
  std::condition_variable cv;
  size_t unanswered = 0;
  bool rejected = false;
  auto answered = [&](std::vector<Outcome> outs) {
    std::lock_guard<std::mutex> lock(mu);
    rejected = rejected || !outs.front().ok();
    --unanswered;
    cv.notify_one();
  };
  for (auto _ : state) {
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return unanswered < window; });
      ++unanswered;
    }
    g_ledger->Submit({UsageCommand(g_counter++)}, answered);
  }
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return unanswered == 0; });
  if (rejected) state.SkipWithError("rejected");
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_Stream)
    ->ArgNames({"sync", "window"})
    ->ArgsProduct({{1}, {1024}})
    ->Setup(OpenShared)
    ->Teardown(CloseShared)
    ->UseRealTime();

constexpr uint64_t kReplayEvents = 1000000;
std::string g_replay_dir;

void BuildReplayLog(const benchmark::State&) {
  g_replay_dir = BenchDir("replay");
  LedgerOptions o;
  o.data_dir = g_replay_dir;
  o.sync = false;
  std::unique_ptr<Ledger> l;
  if (!Ledger::Open(o, &l).ok()) abort();
  for (uint64_t n = 0; n < kReplayEvents; n += 8192) {
    std::vector<Command> batch;
    for (uint64_t i = n; i < std::min(n + 8192, kReplayEvents); ++i)
      batch.push_back(UsageCommand(i));
    l->ExecuteBatch(std::move(batch));
  }
}

void BM_ReopenFromSnapshot(benchmark::State& state) {
  for (auto _ : state) {
    LedgerOptions o;
    o.data_dir = g_replay_dir;
    std::unique_ptr<Ledger> l;
    if (!Ledger::Open(o, &l).ok()) state.SkipWithError("open failed");
    benchmark::DoNotOptimize(l->StateHash());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kReplayEvents));
}
BENCHMARK(BM_ReopenFromSnapshot)
    ->Setup(BuildReplayLog)
    ->Teardown([](const benchmark::State&) { std::filesystem::remove_all(g_replay_dir); })
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(3);

}  // namespace
}  // namespace ledger

BENCHMARK_MAIN();
