// The benchmark's own tools as processes: what ledger-loadgen reports is what
// the server recorded, and the HTTP ceiling server answers every mode in a
// shape the load generator counts. The README's numbers rest on both.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <regex>
#include <string>

#include "tests/json_view.h"
#include "tests/process_util.h"
#include "tests/server_process.h"
#include "tests/test_support.h"

namespace ledger::testing {
namespace {

struct LoadReport {
  long long requests = -1, ok = -1, rejected = -1, http_errors = -1;
  double client_us = -1, client_user_s = -1, client_system_s = -1;
};

std::string Url(int port) { return "http://127.0.0.1:" + std::to_string(port); }

LoadReport Load(const std::string& url, const std::string& args) {
  CommandResult r =
      RunTool("LEDGER_LOADGEN", "--url " + url + " --connections 2 --seconds 1 " + args);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  LoadReport report;
  std::smatch m;
  if (std::regex_search(r.out, m, std::regex(R"(requests +(\d+))"))) {
    report.requests = std::stoll(m[1]);
  }
  if (std::regex_search(r.out, m,
                        std::regex(R"(events ok +(\d+) .*, rejected (\d+), http errors (\d+))"))) {
    report.ok = std::stoll(m[1]);
    report.rejected = std::stoll(m[2]);
    report.http_errors = std::stoll(m[3]);
  }
  if (std::regex_search(r.out, m,
                        std::regex(R"(client cpu ([0-9.]+) us per event \(user ([0-9.]+) s, )"
                                   R"(system ([0-9.]+) s\))"))) {
    report.client_us = std::stod(m[1]);
    report.client_user_s = std::stod(m[2]);
    report.client_system_s = std::stod(m[3]);
  }
  EXPECT_GE(report.ok, 0) << "no summary in: " << r.out;
  // Its own CPU, per event answered: some, and the user and system times it
  // names over those events (to the printed rounding: each time to 0.005 s,
  // the figure to 0.005 us).
  long long answered = report.ok + report.rejected;
  EXPECT_GT(report.client_us, 0) << r.out;
  if (answered > 0) {
    double per_event =
        (report.client_user_s + report.client_system_s) * 1e6 / static_cast<double>(answered);
    EXPECT_NEAR(report.client_us, per_event, 0.01 + 0.01 * 1e6 / static_cast<double>(answered))
        << r.out;
  }
  return report;
}

// Commands per request in `mode` (the tests send batches of 40).
long long PerRequest(const std::string& mode) { return mode == "single" ? 1 : 40; }

long long LastSeq(HttpClient&& client) {
  HttpResult metrics = client.Get("/metrics");
  std::smatch m;
  if (!std::regex_search(metrics.body, m, std::regex(R"(\nledger_last_seq (\d+))"))) return -1;
  return std::stoll(m[1]);
}

TEST(Loadgen, EventsItCountsOkAreTheEventsTheServerAppended) {
  TempDir dir;
  ServerProcess server(dir.path() + "/data", {"--no-access-log"});
  ASSERT_TRUE(server.started()) << server.Output();
  // The first run gives each user a starting balance: events too.
  Load(Url(server.port()), "--users 30 --mode single");
  for (std::string mode :
       {"single", "json-batch", "capnp-batch", "capnp-batch --results compact"}) {
    SCOPED_TRACE(mode);
    long long before = LastSeq(HttpClient(server.port()));
    LoadReport r = Load(Url(server.port()), "--no-setup --users 30 --batch 40 --mode " + mode);
    EXPECT_GT(r.ok, 0);
    EXPECT_EQ(r.http_errors, 0);
    // Every answered command was an event or a rejection; nothing more.
    EXPECT_EQ(LastSeq(HttpClient(server.port())) - before, r.ok);
    EXPECT_EQ(r.ok + r.rejected, r.requests * PerRequest(mode));
  }
}

// `--url unix:PATH` against `ledgerd --listen unix:PATH`, the setup included.
TEST(Loadgen, DrivesAServerOnAUnixDomainSocket) {
  TempDir dir;
  std::string path = dir.path() + "/ledgerd.sock";
  ServerProcess server(dir.path() + "/data", {"--no-access-log", "--listen", "unix:" + path});
  ASSERT_TRUE(server.started()) << server.Output();
  Load("unix:" + path, "--users 30 --mode single");
  EXPECT_EQ(Json(HttpClient(path).Get("/v1/stats").body).Int("/users"), 30)
      << "the setup gave each user a starting balance";
  for (const char* mode : {"single", "capnp-batch"}) {
    SCOPED_TRACE(mode);
    long long before = LastSeq(HttpClient(path));
    LoadReport r =
        Load("unix:" + path, std::string("--no-setup --users 30 --batch 40 --mode ") + mode);
    EXPECT_GT(r.ok, 0);
    EXPECT_EQ(r.http_errors, 0);
    EXPECT_EQ(LastSeq(HttpClient(path)) - before, r.ok);
    EXPECT_EQ(r.ok + r.rejected, r.requests * PerRequest(mode));
  }
}

// The ceiling server as a child, on `listen`; its first line names the
// address it took.
class CeilingServer {
 public:
  explicit CeilingServer(const std::string& listen = "127.0.0.1:0") {
    const char* bin = std::getenv("BENCH_HTTP_CEILING");
    if (bin == nullptr) return;
    int fds[2];
    if (pipe(fds) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(fds[1], STDOUT_FILENO);
      close(fds[0]);
      close(fds[1]);
      execl(bin, bin, "--listen", listen.c_str(), "--batch", "40", static_cast<char*>(nullptr));
      _exit(127);
    }
    close(fds[1]);
    FILE* out = fdopen(fds[0], "r");
    char line[256] = {};
    if (out != nullptr && std::fgets(line, sizeof line, out) != nullptr) {
      std::smatch m;
      std::string text = line;
      if (std::regex_search(text, m, std::regex(R"(127\.0\.0\.1:(\d+))"))) {
        url_ = Url(std::stoi(m[1]));
      } else if (text.find("listening on " + listen) != std::string::npos) {
        url_ = listen;  // unix:PATH
      }
    }
    if (out != nullptr) std::fclose(out);
  }
  ~CeilingServer() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  // ledger-loadgen's --url for it; empty if it did not start.
  const std::string& url() const { return url_; }

 private:
  pid_t pid_ = -1;
  std::string url_;
};

TEST(Loadgen, CeilingServerAnswersEveryModeAsLedgerdWould) {
  TempDir dir;
  // Over loopback TCP and over a Unix-domain socket, as the benchmark runs it.
  for (std::string listen : {std::string("127.0.0.1:0"), "unix:" + dir.path() + "/ceiling.sock"}) {
    SCOPED_TRACE(listen);
    CeilingServer ceiling(listen);
    ASSERT_FALSE(ceiling.url().empty()) << "bench_http_ceiling did not start ($BENCH_HTTP_CEILING)";
    for (const char* mode : {"single", "json-batch", "capnp-batch"}) {
      SCOPED_TRACE(mode);
      LoadReport r =
          Load(ceiling.url(), std::string("--no-setup --users 30 --batch 40 --mode ") + mode);
      EXPECT_GT(r.requests, 0);
      EXPECT_EQ(r.http_errors, 0);
      EXPECT_EQ(r.rejected, 0);
      // Each answer is counted whole: one result per command sent.
      EXPECT_EQ(r.ok, r.requests * PerRequest(mode));
    }
  }
}

// A server that is not there is a clear error and a failed exit, with or
// without the setup run, not an uncaught exception.
TEST(Loadgen, SaysSoWhenNoServerListens) {
  // A port bound but not listening: every connect to it is refused.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), len), 0);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  std::string url = Url(ntohs(addr.sin_port));
  CommandResult setup = RunTool("LEDGER_LOADGEN", "--url " + url + " --seconds 1");
  EXPECT_EQ(setup.exit_code, 1) << setup.err;
  EXPECT_NE(setup.err.find("setup: connect: Connection refused"), std::string::npos) << setup.err;
  EXPECT_EQ(setup.err.find("terminate"), std::string::npos) << setup.err;
  CommandResult run = RunTool("LEDGER_LOADGEN", "--url " + url + " --seconds 1 --no-setup");
  EXPECT_EQ(run.exit_code, 1) << run.err;
  EXPECT_NE(run.err.find("Connection refused"), std::string::npos) << run.err;
  EXPECT_NE(run.out.find("events ok  0 "), std::string::npos) << run.out;
  close(fd);
}

}  // namespace
}  // namespace ledger::testing
