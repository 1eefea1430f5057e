// ledger-replay: audits and point-in-time rebuilds of a ledger data directory
// (SPEC §4). Opens the directory read-only: safe beside a running ledgerd.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "engine/export.h"
#include "engine/json_writer.h"
#include "engine/log_store.h"
#include "engine/time_format.h"
#include "events/codec.h"
#include "replay/replay.h"
#include "snapshots/snapshot_store.h"

namespace ledger {
namespace {

constexpr const char* kHelp = R"(ledger-replay: audit and rebuild a ledger from its log.

Usage:
  ledger-replay verify --data DIR [--json]
      Rebuilds from the first event: checks every record's checksum and the
      chain, every seq, every running balance, and every snapshot against
      the state replay reaches at its seq. Exit 0 only when all of it holds.
  ledger-replay rebuild --data DIR (--to-seq N | --at TIME) [--format json|csv] [--out FILE]
      The projection as of seq N, or as of TIME (RFC 3339: every event up to
      and including that time): one row per user (user_id, balance,
      updated_at), sorted by user id.

The data directory is opened read-only and never written.
)";

[[noreturn]] void Usage(const std::string& message) {
  std::fprintf(stderr, "ledger-replay: %s (see --help)\n", message.c_str());
  std::exit(2);
}

// Progress on stderr: a bar with events/s and time left on a terminal,
// a plain line every few seconds otherwise.
class Progress {
 public:
  explicit Progress(Seq total) : total_(total), tty_(isatty(2) != 0), start_(Clock::now()) {}
  void Update(Seq seq, uint64_t events) {
    auto now = Clock::now();
    if (now - last_ < (tty_ ? std::chrono::milliseconds(200) : std::chrono::seconds(5)) &&
        seq < total_) {
      return;
    }
    last_ = now;
    double secs = std::chrono::duration<double>(now - start_).count();
    double rate = secs > 0 ? static_cast<double>(events) / secs : 0;
    double frac = total_ ? static_cast<double>(seq) / static_cast<double>(total_) : 1;
    double left = rate > 0 && total_ > seq ? static_cast<double>(total_ - seq) / rate : 0;
    if (tty_) {
      int width = 30, filled = static_cast<int>(frac * width);
      std::fprintf(stderr, "\r[%.*s%*s] %5.1f%%  seq %llu/%llu  %.0f events/s  %.0f s left ",
                   filled, "##############################", width - filled, "", frac * 100,
                   static_cast<unsigned long long>(seq), static_cast<unsigned long long>(total_),
                   rate, left);
    } else {
      std::fprintf(stderr, "replay: seq %llu of %llu (%.1f%%), %.0f events/s, %.0f s left\n",
                   static_cast<unsigned long long>(seq), static_cast<unsigned long long>(total_),
                   frac * 100, rate, left);
    }
  }
  void Done() {
    if (tty_) std::fputc('\n', stderr);
  }

 private:
  using Clock = std::chrono::steady_clock;
  Seq total_;
  bool tty_;
  Clock::time_point start_, last_;
};

std::unique_ptr<LogStore> OpenReadOnly(const std::string& dir) {
  std::unique_ptr<LogStore> store;
  Status s = LogStore::Open(StoreOptions{dir, false, /*read_only=*/true}, &store);
  if (!s.ok()) {
    std::fprintf(stderr, "ledger-replay: %s\n", s.message().c_str());
    std::exit(2);
  }
  return store;
}

int Verify(const std::string& dir, bool json) {
  auto store = OpenReadOnly(dir);
  Seq last = 0;
  uint64_t last_checksum = 0;
  std::vector<std::string> problems;
  Status s = store->LastRecord(&last, &last_checksum);
  if (!s.ok()) problems.push_back(s.message());

  std::vector<std::string> snapshot_problems;
  std::vector<SnapshotInfo> snapshots =
      ListSnapshots(store->db(), store->snapshots_cf(), &snapshot_problems);
  problems.insert(problems.end(), snapshot_problems.begin(), snapshot_problems.end());
  std::sort(snapshots.begin(), snapshots.end(),
            [](const SnapshotInfo& a, const SnapshotInfo& b) { return a.seq < b.seq; });

  Bounds bounds = store->StoredBounds();
  Projection projection(bounds);
  Progress progress(last);
  ReplayOptions options;
  options.stop_on_problem = false;
  options.progress_every = 100000;
  options.progress = [&](Seq seq, uint64_t) { progress.Update(seq, projection.event_count()); };
  auto start = std::chrono::steady_clock::now();
  ReplayResult result;
  Seq at = 0;
  uint64_t checksum = kGenesisChecksum;
  size_t snapshots_checked = 0;
  // Replay in segments, stopping at each snapshot's seq to compare states.
  for (size_t i = 0; i <= snapshots.size(); ++i) {
    options.to_seq = i < snapshots.size() ? snapshots[i].seq : 0;
    ReplayResult segment;
    (void)ReplayLog(store->db(), store->log_cf(), at, checksum, &projection, options, &segment);
    problems.insert(problems.end(), segment.problems.begin(), segment.problems.end());
    result.events += segment.events;
    at = segment.last_seq;
    checksum = segment.last_checksum;
    if (i == snapshots.size()) break;
    const SnapshotInfo& snap = snapshots[i];
    std::string where = "snapshot at seq " + std::to_string(snap.seq) + ": ";
    if (at != snap.seq) {
      problems.push_back(where + "replay did not reach its seq");
      continue;
    }
    if (projection.state_hash() != snap.state_hash) {
      problems.push_back(where + "state hash " + HexHash(snap.state_hash) + " but replay gives " +
                         HexHash(projection.state_hash()));
    }
    if (checksum != snap.log_checksum) {
      problems.push_back(where + "names a log record checksum the log does not have");
    }
    Projection loaded(bounds);
    SnapshotInfo info;
    Status ls = LoadSnapshot(store->db(), store->snapshots_cf(), snap.seq, &loaded, &info);
    if (!ls.ok()) problems.push_back(ls.message());
    ++snapshots_checked;
  }
  progress.Done();
  if (at != last) {
    problems.push_back("replay ended at seq " + std::to_string(at) + " but the log ends at seq " +
                       std::to_string(last));
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (json) {
    std::string out;
    JsonWriter w(&out);
    w.BeginObject().Key("ok").Bool(problems.empty()).Key("events").Uint(result.events);
    w.Key("last_seq").Uint(at).Key("users").Uint(projection.user_count());
    w.Key("state_hash").String(HexHash(projection.state_hash()));
    w.Key("snapshots_checked").Uint(snapshots_checked);
    w.Key("seconds").Raw(std::to_string(secs));
    w.Key("problems").BeginArray();
    for (const auto& p : problems) w.String(p);
    w.EndArray().EndObject();
    std::printf("%s\n", out.c_str());
  } else {
    std::printf("events checked   %llu (%.0f events/s)\n",
                static_cast<unsigned long long>(result.events),
                secs > 0 ? static_cast<double>(result.events) / secs : 0.0);
    std::printf("last seq         %llu\n", static_cast<unsigned long long>(at));
    std::printf("users            %zu\n", projection.user_count());
    std::printf("state hash       %s\n", HexHash(projection.state_hash()).c_str());
    std::printf("snapshots        %zu checked\n", snapshots_checked);
    if (problems.empty()) {
      std::printf("audit: OK\n");
    } else {
      std::printf("audit: %zu problem(s)\n", problems.size());
      for (const auto& p : problems) std::printf("  - %s\n", p.c_str());
    }
  }
  return problems.empty() ? 0 : 1;
}

int Rebuild(const std::string& dir, Seq to_seq, TimeUs at, const std::string& format,
            const std::string& out_path) {
  auto store = OpenReadOnly(dir);
  Seq last = 0;
  uint64_t last_checksum = 0;
  if (!store->LastRecord(&last, &last_checksum).ok()) return 2;
  Bounds bounds = store->StoredBounds();
  auto projection = std::make_unique<Projection>(bounds);
  Seq from = 0;
  uint64_t checksum = kGenesisChecksum;
  if (to_seq != 0) {
    // Start from the newest snapshot at or before the target, when one loads.
    for (const SnapshotInfo& snap : ListSnapshots(store->db(), store->snapshots_cf())) {
      if (snap.seq > to_seq) continue;
      auto loaded = std::make_unique<Projection>(bounds);
      SnapshotInfo info;
      if (LoadSnapshot(store->db(), store->snapshots_cf(), snap.seq, loaded.get(), &info).ok()) {
        projection = std::move(loaded);
        from = info.seq;
        checksum = info.log_checksum;
        break;
      }
    }
  }
  Progress progress(to_seq != 0 ? std::min(to_seq, last) : last);
  ReplayOptions options;
  options.to_seq = to_seq;
  options.to_time = at;
  options.progress_every = 100000;
  options.progress = [&](Seq seq, uint64_t events) { progress.Update(seq, events); };
  ReplayResult result;
  Status s =
      ReplayLog(store->db(), store->log_cf(), from, checksum, projection.get(), options, &result);
  progress.Done();
  if (!s.ok()) {
    std::fprintf(stderr, "ledger-replay: %s\n", s.message().c_str());
    return 1;
  }
  if (to_seq != 0 && result.last_seq < to_seq) {
    std::fprintf(stderr, "ledger-replay: the log ends at seq %llu, before seq %llu\n",
                 static_cast<unsigned long long>(result.last_seq),
                 static_cast<unsigned long long>(to_seq));
    return 1;
  }
  std::string out =
      ExportUsers(*projection, format == "csv" ? ExportFormat::kCsv : ExportFormat::kJson);
  if (out_path.empty()) {
    std::fwrite(out.data(), 1, out.size(), stdout);
  } else {
    std::ofstream f(out_path, std::ios::binary);
    f << out;
    if (!f) {
      std::fprintf(stderr, "ledger-replay: cannot write %s\n", out_path.c_str());
      return 2;
    }
  }
  std::fprintf(stderr, "ledger-replay: rebuilt %zu users as of seq %llu\n",
               projection->user_count(), static_cast<unsigned long long>(result.last_seq));
  return 0;
}

}  // namespace
}  // namespace ledger

int main(int argc, char** argv) {
  using namespace ledger;
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    std::fputs(kHelp, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  std::string command = argv[1];
  std::string dir, format = "json", out;
  bool json = false;
  Seq to_seq = 0;
  TimeUs at = 0;
  for (int i = 2; i < argc; ++i) {
    std::string f = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) Usage(f + " needs a value");
      return argv[++i];
    };
    if (f == "--help") {
      std::fputs(kHelp, stdout);
      return 0;
    } else if (f == "--data") {
      dir = next();
    } else if (f == "--json") {
      json = true;
    } else if (f == "--to-seq") {
      std::string v = next();
      char* end = nullptr;
      to_seq = std::strtoull(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || to_seq == 0) Usage("--to-seq wants a seq from 1");
    } else if (f == "--at") {
      auto t = ParseTime(next());
      if (!t) Usage("--at wants an RFC 3339 time, e.g. 2026-01-31T12:00:00Z");
      at = *t;
    } else if (f == "--format") {
      format = next();
      if (format != "json" && format != "csv") Usage("--format is json or csv");
    } else if (f == "--out") {
      out = next();
    } else {
      Usage("unknown flag '" + f + "'");
    }
  }
  if (dir.empty()) Usage("--data DIR is required");
  if (command == "verify") return Verify(dir, json);
  if (command == "rebuild") {
    if ((to_seq == 0) == (at == 0)) Usage("rebuild wants exactly one of --to-seq or --at");
    return Rebuild(dir, to_seq, at, format, out);
  }
  Usage("unknown command '" + command + "' (verify or rebuild)");
}
