// Crash recovery with real processes: ledgerd ingests concurrently (many
// connections, every command kind, and batches large enough for the writer's
// pipelined groups) and is killed with SIGKILL at random
// moments. After each restart every acknowledged command is there, the audit
// passes, balances equal a fresh replay, and ingestion continues at the next
// seq without a gap.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <thread>

#include "engine/wal_pool.h"
#include "tests/json_view.h"
#include "tests/process_util.h"
#include "tests/server_process.h"
#include "tests/test_support.h"

namespace ledger::testing {
namespace {

struct Acked {
  std::string body;  // the command, to send again
  int64_t seq;
};

// One client's random commands; remembers what was acknowledged.
void Client(int port, int id, int round, std::atomic<bool>* stop, std::mutex* mu,
            std::vector<Acked>* acked) {
  std::mt19937_64 rng(static_cast<uint64_t>(round * 100 + id));
  std::vector<std::string> my_topups;
  try {
    HttpClient c(port);
    for (int i = 0; !stop->load() && i < 100000; ++i) {
      std::string user = "u" + std::to_string(rng() % 12);
      std::string key =
          "r" + std::to_string(round) + "-c" + std::to_string(id) + "-" + std::to_string(i);
      std::string body;
      switch (rng() % 8) {
        case 0:
        case 1:
          body = R"({"type":"top_up","user_id":")" + user + R"(","amount":500,"key":"pi-)" + key +
                 "\"}";
          break;
        case 2:
          body = R"({"type":"grant","user_id":")" + user + R"(","amount":5,"key":")" + key +
                 R"(","metadata":{"round":)" + std::to_string(round) + "}}";
          break;
        case 3:
          if (!my_topups.empty()) {
            body = R"({"type":"refund","payment_key":")" + my_topups[rng() % my_topups.size()] +
                   R"(","amount":1,"key":"re-)" + key + "\"}";
            break;
          }
          [[fallthrough]];
        case 4:
          body = R"({"type":"top_up","user_id":")" + user +
                 R"(","amount":50,"pending":true,"key":"pp-)" + key + "\"}";
          break;
        default:
          body = R"({"type":"usage","user_id":")" + user + R"(","amount":)" +
                 std::to_string(1 + rng() % 20) + R"(,"allow_negative":true,"key":")" + key + "\"}";
      }
      HttpResult r = c.Post(body);
      if (r.status != 200) continue;
      Json j(r.body);
      if (body.find("\"top_up\"") != std::string::npos &&
          body.find("pending") == std::string::npos) {
        my_topups.push_back(j.Str("/key"));
      }
      std::lock_guard<std::mutex> lock(*mu);
      acked->push_back({body, j.Int("/seq")});
    }
  } catch (const std::exception&) {
    // The server died mid-request: that one was not acknowledged.
  }
}

// Batches of 300 (at least the writer's pipelining threshold, so their groups
// are written and synced by the write and sync threads while the next is
// decided, and a kill can land between a group's write and its sync); remembers each
// acknowledged command as a single one, to send again.
void BatchClient(int port, int round, std::atomic<bool>* stop, std::mutex* mu,
                 std::vector<Acked>* acked) {
  std::mt19937_64 rng(static_cast<uint64_t>(round * 100 + 99));
  try {
    HttpClient c(port);
    for (int b = 0; !stop->load() && b < 30; ++b) {
      std::vector<std::string> bodies;
      std::string batch = "[";
      for (int i = 0; i < 300; ++i) {
        std::string user = "u" + std::to_string(rng() % 12);
        std::string key =
            "r" + std::to_string(round) + "-b" + std::to_string(b) + "-" + std::to_string(i);
        bodies.push_back(i % 5 == 0 ? R"({"type":"top_up","user_id":")" + user +
                                          R"(","amount":100,"key":"pi-)" + key + "\"}"
                                    : R"({"type":"usage","user_id":")" + user + R"(","amount":)" +
                                          std::to_string(1 + rng() % 5) +
                                          R"(,"allow_negative":true,"key":")" + key + "\"}");
        batch += (i ? "," : "") + bodies.back();
      }
      HttpResult r = c.Post(batch + "]");
      if (r.status != 200) continue;
      Json j(r.body);
      std::lock_guard<std::mutex> lock(*mu);
      for (size_t i = 0; i < bodies.size(); i += 7) {  // a sample, to keep the checks short
        std::string p = "/" + std::to_string(i);
        if (j.Bool(p + "/ok")) acked->push_back({bodies[i], j.Int(p + "/seq")});
      }
    }
  } catch (const std::exception&) {
    // The server died mid-request: that batch was not acknowledged.
  }
}

constexpr int kSpareMiB = 8;

// A WAL file still the size of its spare whose last 4 KiB are zeros: the
// process died before writing that far.
bool HasZeroTailedWal(const std::string& data) {
  for (const auto& e : std::filesystem::directory_iterator(data)) {
    if (!WalPool::IsWalFile(e.path().string()) || e.file_size() != static_cast<uint64_t>(kSpareMiB)
                                                                       << 20) {
      continue;
    }
    std::ifstream in(e.path(), std::ios::binary);
    in.seekg(-4096, std::ios::end);
    std::string tail(4096, '\1');
    in.read(tail.data(), 4096);
    if (in && tail.find_first_not_of('\0') == std::string::npos) return true;
  }
  return false;
}

TEST(CrashRecovery, KillNineAtRandomMomentsLosesNothingAcknowledged) {
  TempDir dir;
  std::string data = dir.Sub("data");
  std::mt19937_64 rng(20261122);
  std::vector<Acked> all_acked;
  int64_t previous_last = 0;
  int64_t overlapped = 0;   // groups handed on by the writer, over all rounds
  int zero_tail_kills = 0;  // kills that left a WAL ending in its spare's zeros
  constexpr int kRounds = 20;
  for (int round = 0; round < kRounds; ++round) {
    // Small zero-filled WAL files, so that a kill often lands while the WAL
    // is still inside its spare and recovery reads up to the zeros.
    ServerProcess server(data, {"--snapshot-every", "150", "--no-access-log", "--wal-file-mb",
                                std::to_string(kSpareMiB)});
    ASSERT_TRUE(server.started()) << server.Output();
    {
      HttpClient c(server.port());
      Json stats(c.Get("/v1/stats").body);
      int64_t last = stats.Int("/last_seq");
      // Everything acknowledged before the last kill survived it.
      ASSERT_GE(last, previous_last) << "round " << round;
      for (const Acked& a : all_acked) ASSERT_LE(a.seq, last) << a.body;
      // Every acknowledged command is present: sent again, it is a duplicate
      // of the same seq (a sample each round, all of them at the end).
      size_t step = round == kRounds - 1 ? 1 : all_acked.size() / 25 + 1;
      for (size_t i = 0; i < all_acked.size(); i += step) {
        Json j(c.Post(all_acked[i].body).body);
        ASSERT_TRUE(j.Bool("/ok")) << all_acked[i].body;
        ASSERT_TRUE(j.Bool("/duplicate")) << all_acked[i].body;
        ASSERT_EQ(j.Int("/seq"), all_acked[i].seq) << all_acked[i].body;
      }
      // Ingestion continues at the next seq, with no gap.
      Json next(c.Post(R"({"type":"grant","user_id":"probe","amount":1})").body);
      ASSERT_EQ(next.Int("/seq"), last + 1) << "round " << round;
    }
    // The audit passes while the server runs (read-only beside it).
    CommandResult audit = RunTool("LEDGER_REPLAY", "verify --json --data " + data);
    ASSERT_EQ(audit.exit_code, 0) << audit.out << audit.err;
    Json report(audit.out);
    EXPECT_TRUE(report.Bool("/ok"));
    // Balances equal a fresh replay of the log.
    CommandResult rebuild =
        RunTool("LEDGER_REPLAY", "rebuild --format json --to-seq " +
                                     std::to_string(report.Int("/last_seq")) + " --data " + data);
    ASSERT_EQ(rebuild.exit_code, 0) << rebuild.err;
    Json rebuilt(rebuild.out);
    {
      HttpClient c(server.port());
      for (size_t u = 0; u < rebuilt.Size("/users"); ++u) {
        std::string p = "/users/" + std::to_string(u);
        Json b(c.Get("/v1/users/" + rebuilt.Str(p + "/user_id") + "/balance").body);
        EXPECT_EQ(b.Int("/balance"), rebuilt.Int(p + "/balance")) << rebuilt.Str(p + "/user_id");
      }
      previous_last = Json(c.Get("/v1/stats").body).Int("/last_seq");
    }

    // Load from many connections, then SIGKILL at a random moment.
    std::atomic<bool> stop{false};
    std::mutex mu;
    std::vector<Acked> acked;
    std::vector<std::thread> clients;
    for (int id = 0; id < 8; ++id) {
      clients.emplace_back(Client, server.port(), id, round, &stop, &mu, &acked);
    }
    clients.emplace_back(BatchClient, server.port(), round, &stop, &mu, &acked);
    std::this_thread::sleep_for(std::chrono::milliseconds(30 + rng() % 400));
    try {
      HttpClient m(server.port());
      overlapped +=
          MetricValue(m.Get("/metrics").body, "ledger_overlapped_groups_total").value_or(0);
    } catch (const std::exception&) {
    }
    server.Stop(SIGKILL);
    stop = true;
    for (auto& t : clients) t.join();
    if (HasZeroTailedWal(data)) ++zero_tail_kills;
    all_acked.insert(all_acked.end(), acked.begin(), acked.end());
  }
  EXPECT_GT(all_acked.size(), 500u);
  EXPECT_GT(overlapped, 0) << "no group was written while the next was decided";
  EXPECT_GT(zero_tail_kills, 0) << "no kill left a WAL inside its zero-filled spare";
  std::printf("kills that left a WAL ending in zeros: %d of %d\n", zero_tail_kills, kRounds);
  std::printf("groups written while the next was decided, over all rounds: %lld\n",
              static_cast<long long>(overlapped));
}

}  // namespace
}  // namespace ledger::testing
