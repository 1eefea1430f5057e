// ledger-read as a process, against a live server and straight from the
// data directory (read-only, beside the running server): same answers.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>

#include "tests/json_view.h"
#include "tests/process_util.h"
#include "tests/server_process.h"
#include "tests/test_support.h"

namespace ledger::testing {
namespace {

class LedgerRead : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<ServerProcess>(dir_.Sub("data"),
                                              std::vector<std::string>{"--snapshot-every", "5"});
    ASSERT_TRUE(server_->started()) << server_->Output();
    HttpClient c(server_->port());
    for (
        const char* body :
        {R"({"type":"top_up","user_id":"alice","amount":1000,"key":"pi_a"})",
         R"({"type":"usage","user_id":"alice","amount":250,"metadata":{"graph_exec_id":"g1"}})",
         R"({"type":"top_up","user_id":"bob","amount":70,"key":"pi_b"})",
         R"({"type":"refund_request","payment_key":"pi_a","reason":"unused"})",
         R"({"type":"dispute","payment_key":"pi_b","key":"dp_1","amount":20,"status":"needs_response"})",
         R"({"type":"grant","user_id":"carol","amount":5000,"key":"promo"})",
         R"({"type":"usage","user_id":"alice","amount":50})"}) {
      ASSERT_EQ(c.Post(body).status, 200) << body;
    }
  }
  void TearDown() override { server_->Stop(SIGTERM); }
  std::vector<std::string> Sources() {
    return {"--server http://127.0.0.1:" + std::to_string(server_->port()),
            "--data " + dir_.Sub("data")};
  }
  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(LedgerRead, BalanceFromServerAndDataDirectoryAgree) {
  for (const std::string& src : Sources()) {
    CommandResult r = RunTool("LEDGER_READ", "balance alice --json " + src);
    ASSERT_EQ(r.exit_code, 0) << src << r.err;
    Json j(r.out);
    EXPECT_EQ(j.Int("/balance"), 700) << src;
    EXPECT_EQ(j.Int("/seq"), 7) << src;
    CommandResult table = RunTool("LEDGER_READ", "balance alice " + src);
    EXPECT_NE(table.out.find("balance     700"), std::string::npos) << src << table.out;
    CommandResult unknown = RunTool("LEDGER_READ", "balance nobody --json " + src);
    EXPECT_EQ(unknown.exit_code, 1) << src;
    EXPECT_EQ(Json(unknown.out).Int("/balance"), 0);
  }
}

// --server unix:PATH reaches a ledgerd listening on a Unix-domain socket,
// with the same answers as over TCP.
TEST_F(LedgerRead, ReachesAServerOnAUnixDomainSocket) {
  std::string over_tcp = RunTool("LEDGER_READ", "history alice --json " + Sources()[0]).out;
  server_->Stop(SIGTERM);
  std::string path = dir_.Sub("ledgerd.sock");
  server_ = std::make_unique<ServerProcess>(dir_.Sub("data"),
                                            std::vector<std::string>{"--listen", "unix:" + path});
  ASSERT_TRUE(server_->started()) << server_->Output();
  CommandResult r = RunTool("LEDGER_READ", "balance alice --json --server unix:" + path);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Json(r.out).Int("/balance"), 700);
  EXPECT_EQ(RunTool("LEDGER_READ", "history alice --json --server unix:" + path).out, over_tcp);
  CommandResult gone = RunTool("LEDGER_READ", "stats --server unix:" + dir_.Sub("no.sock"));
  EXPECT_EQ(gone.exit_code, 2);
  EXPECT_NE(gone.err.find("cannot reach unix:"), std::string::npos) << gone.err;
}

TEST_F(LedgerRead, HistoryRequestsDisputesTopStatsExport) {
  for (const std::string& src : Sources()) {
    CommandResult h = RunTool("LEDGER_READ", "history alice --json --limit 2 " + src);
    ASSERT_EQ(h.exit_code, 0) << h.err;
    Json hj(h.out);
    EXPECT_EQ(hj.Size("/transactions"), 2u);
    EXPECT_EQ(hj.Int("/transactions/0/amount"), -50);
    EXPECT_EQ(hj.Str("/transactions/1/type"), "refund_request");  // alice's seqs: 1, 2, 4, 7
    EXPECT_EQ(hj.Int("/next_before_seq"), 4);
    CommandResult ht = RunTool("LEDGER_READ", "history alice --type usage " + src);
    EXPECT_NE(ht.out.find("running_balance"), std::string::npos) << ht.out;
    EXPECT_NE(ht.out.find("-250"), std::string::npos) << ht.out;
    CommandResult rr = RunTool("LEDGER_READ", "refund-requests alice --json " + src);
    EXPECT_EQ(Json(rr.out).Str("/refund_requests/0/status"), "pending") << src;
    CommandResult d = RunTool("LEDGER_READ", "disputes bob " + src);
    EXPECT_NE(d.out.find("needs_response"), std::string::npos) << d.out;
    CommandResult top = RunTool("LEDGER_READ", "top --limit 2 --json " + src);
    Json tj(top.out);
    EXPECT_EQ(tj.Str("/users/0/user_id"), "carol");
    EXPECT_EQ(tj.Str("/users/1/user_id"), "alice");
    CommandResult stats = RunTool("LEDGER_READ", "stats --json " + src);
    EXPECT_EQ(Json(stats.out).Int("/users"), 3);
    EXPECT_EQ(Json(stats.out).Int("/last_seq"), 7);
    CommandResult csv = RunTool("LEDGER_READ", "export --format csv " + src);
    EXPECT_EQ(csv.out, "user_id,balance,updated_at\n" + csv.out.substr(27));
    EXPECT_NE(csv.out.find("alice,700,"), std::string::npos) << csv.out;
    EXPECT_NE(csv.out.find("bob,70,"), std::string::npos) << csv.out;
    CommandResult nd = RunTool("LEDGER_READ", "export --format ndjson " + src);
    EXPECT_EQ(std::count(nd.out.begin(), nd.out.end(), '\n'), 3);
  }
  // Both sources export the same bytes.
  EXPECT_EQ(RunTool("LEDGER_READ", "export --format json " + Sources()[0]).out,
            RunTool("LEDGER_READ", "export --format json " + Sources()[1]).out);
}

TEST_F(LedgerRead, PointInTimeBalanceAndGroupedHistory) {
  for (const std::string& src : Sources()) {
    // alice: 1000 at seq 1, 750 after the usage at seq 2, 700 at seq 7.
    CommandResult at2 = RunTool("LEDGER_READ", "balance alice --at-seq 3 --json " + src);
    ASSERT_EQ(at2.exit_code, 0) << src << at2.err;
    EXPECT_EQ(Json(at2.out).Int("/balance"), 750) << src;
    EXPECT_EQ(Json(at2.out).Int("/seq"), 2) << src;
    CommandResult at1 = RunTool("LEDGER_READ", "balance alice --at-seq 1 " + src);
    EXPECT_NE(at1.out.find("balance     1000"), std::string::npos) << src << at1.out;
    // Bob had no event by seq 2: not found, balance 0.
    CommandResult early = RunTool("LEDGER_READ", "balance bob --at-seq 2 --json " + src);
    EXPECT_EQ(early.exit_code, 1) << src;
    CommandResult past = RunTool("LEDGER_READ", "balance alice --at 2001-01-01T00:00:00Z " + src);
    EXPECT_EQ(past.exit_code, 1) << src << past.err;
    EXPECT_EQ(RunTool("LEDGER_READ", "balance alice --at-seq 99 " + src).exit_code, 2) << src;
    CommandResult g = RunTool("LEDGER_READ", "history alice --group " + src);
    ASSERT_EQ(g.exit_code, 0) << g.err;
    EXPECT_NE(g.out.find("node_count"), std::string::npos) << g.out;
    CommandResult gj = RunTool("LEDGER_READ", "history alice --group --type usage --json " + src);
    EXPECT_EQ(Json(gj.out).Str("/transactions/1/graph_exec_id"), "g1") << gj.out;
    EXPECT_EQ(Json(gj.out).Int("/transactions/1/node_count"), 1) << gj.out;
  }
}

TEST_F(LedgerRead, UsageErrorsExitTwo) {
  EXPECT_EQ(RunTool("LEDGER_READ", "balance alice").exit_code, 2);
  EXPECT_EQ(RunTool("LEDGER_READ", "balance --data " + dir_.Sub("data")).exit_code, 2);
  EXPECT_EQ(RunTool("LEDGER_READ", "frobnicate --data " + dir_.Sub("data")).exit_code, 2);
  EXPECT_EQ(RunTool("LEDGER_READ", "stats --data /nonexistent/dir").exit_code, 2);
  CommandResult help = RunTool("LEDGER_READ", "history --help");
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("--before-seq"), std::string::npos);
}

}  // namespace
}  // namespace ledger::testing
