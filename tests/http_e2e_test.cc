// End-to-end: the real ledgerd binary on an ephemeral loopback port with a
// temporary data directory, spoken to over HTTP.
#include <utility>  // before Boost 1.74's asio, which misses it under C++20

#include <gtest/gtest.h>

#include <signal.h>
#include <simdjson.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <atomic>
#include <boost/asio.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "engine/capnp_batch.h"
#include "tests/json_view.h"
#include "tests/server_process.h"
#include "tests/test_support.h"

namespace ledger::testing {
namespace {

constexpr int64_t kIntMin = -2147483648LL;

class HttpE2E : public ::testing::Test {
 protected:
  void Start(std::vector<std::string> args = {}, std::map<std::string, std::string> env = {}) {
    server_.reset();
    server_ = std::make_unique<ServerProcess>(dir_.Sub("data"), args, env);
    ASSERT_TRUE(server_->started()) << server_->Output();
    client_ = std::make_unique<HttpClient>(server_->port(),
                                           env.count("LEDGER_TOKEN") ? env["LEDGER_TOKEN"] : "");
  }
  void SetUp() override { Start(); }
  void TearDown() override {
    client_.reset();
    if (server_) server_->Stop(SIGTERM);
  }
  HttpResult Post(const std::string& body) { return client_->Post(body); }
  Json PostOk(const std::string& body) {
    HttpResult r = Post(body);
    EXPECT_EQ(r.status, 200) << body << " -> " << r.body;
    return Json(r.body);
  }
  int64_t Balance(const std::string& user) {
    HttpResult r = client_->Get("/v1/users/" + user + "/balance");
    EXPECT_EQ(r.status, 200) << r.body;
    return Json(r.body).Int("/balance");
  }

  // A raw connection, for bytes the HttpClient would not send.
  boost::asio::ip::tcp::socket Connect() {
    boost::asio::ip::tcp::socket socket(ioc_);
    socket.connect(
        {boost::asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(server_->port())});
    return socket;
  }

  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<HttpClient> client_;
  boost::asio::io_context ioc_;
};

TEST_F(HttpE2E, EveryCommandAndItsResult) {
  Json t = PostOk(
      R"({"type":"top_up","user_id":"alice","amount":1000,"key":"pi_1","metadata":{"src":"stripe"}})");
  EXPECT_EQ(t.Int("/seq"), 1);
  EXPECT_EQ(t.Int("/balance"), 1000);
  EXPECT_EQ(t.Str("/type"), "top_up");
  EXPECT_EQ(t.Str("/time").size(), 27u);  // 2026-01-31T12:00:00.000000Z
  Json u = PostOk(R"({"type":"usage","user_id":"alice","amount":250})");
  EXPECT_EQ(u.Int("/amount"), -250);
  EXPECT_EQ(u.Int("/applied"), -250);
  EXPECT_EQ(u.Int("/balance"), 750);
  EXPECT_EQ(u.Str("/key"), "ledger:2");
  Json g = PostOk(R"({"type":"grant","user_id":"alice","amount":100,"key":"welcome"})");
  EXPECT_EQ(g.Int("/balance"), 850);
  Json p =
      PostOk(R"({"type":"top_up","user_id":"alice","amount":300,"pending":true,"key":"co_1"})");
  EXPECT_EQ(p.Int("/applied"), 0);
  EXPECT_EQ(p.Int("/balance"), 850);
  Json a = PostOk(
      R"({"type":"activate","user_id":"alice","key":"co_1","new_key":"pi_2","metadata":{"paid":true}})");
  EXPECT_EQ(a.Int("/balance"), 1150);
  EXPECT_EQ(a.Str("/key"), "pi_2");
  Json aa = PostOk(R"({"type":"activate","user_id":"alice","key":"pi_2"})");
  EXPECT_TRUE(aa.Bool("/already_active"));
  Json rr = PostOk(R"({"type":"refund_request","payment_key":"pi_1","reason":"unused credits"})");
  EXPECT_EQ(rr.Str("/decision"), "auto_refund");  // 1000 - 1150 <= tolerance 0
  Json r = PostOk(R"({"type":"refund","payment_key":"pi_1","amount":100,"key":"re_1"})");
  EXPECT_EQ(r.Str("/user_id"), "alice");
  EXPECT_EQ(r.Int("/amount"), -100);
  EXPECT_EQ(r.Int("/balance"), 1050);
  Json sk = PostOk(
      R"({"type":"refund","payment_key":"pi_1","amount":100,"key":"re_2","status":"pending"})");
  EXPECT_TRUE(sk.Bool("/skipped"));
  EXPECT_TRUE(sk.IsNull("/seq"));
  Json d = PostOk(
      R"({"type":"dispute","payment_key":"pi_1","key":"dp_1","amount":50,"status":"needs_response"})");
  EXPECT_EQ(d.Str("/decision"), "accept");
  EXPECT_EQ(d.Int("/evidence/top_up/seq"), 1);
  Json dup = PostOk(
      R"({"type":"dispute","payment_key":"pi_1","key":"dp_1","amount":50,"status":"needs_response"})");
  EXPECT_TRUE(dup.Bool("/duplicate"));
  Json adj = PostOk(
      R"({"type":"adjust","user_id":"bob","balance":5000,"metadata":{"reason":"migration"}})");
  EXPECT_EQ(adj.Int("/applied"), 5000);
  EXPECT_EQ(Balance("alice"), 1050);
  EXPECT_EQ(Balance("bob"), 5000);
  EXPECT_EQ(Balance("nobody"), 0);

  Json stats(client_->Get("/v1/stats").body);
  EXPECT_EQ(stats.Int("/events"), 9);  // duplicate, skipped, already active: nothing
  EXPECT_EQ(stats.Int("/users"), 2);
  EXPECT_EQ(stats.Str("/state_hash").size(), 16u);

  Json reqs(client_->Get("/v1/users/alice/refund-requests").body);
  EXPECT_EQ(reqs.Str("/refund_requests/0/status"), "approved");
  EXPECT_EQ(
      reqs.Str("/refund_requests/0/result"),
      "The refund request has been approved, the amount will be credited back to your account.");
  Json disputes(client_->Get("/v1/users/alice/disputes").body);
  EXPECT_EQ(disputes.Str("/disputes/0/status"), "needs_response");
  EXPECT_TRUE(disputes.Bool("/disputes/0/open"));
}

TEST_F(HttpE2E, ErrorCodesAndStatuses) {
  PostOk(R"({"type":"top_up","user_id":"a","amount":100,"key":"pi_a"})");
  struct Case {
    const char* body;
    int status;
    const char* code;
  } cases[] = {
      {R"({"type":"usage","user_id":"a","amount":500})", 422, "insufficient_balance"},
      {R"({"type":"top_up","user_id":"a","amount":5,"ceiling":50})", 422, "ceiling_reached"},
      {R"({"type":"refund","payment_key":"pi_a","amount":101})", 422, "refund_exceeds_topup"},
      {R"({"type":"refund","payment_key":"pi_zz","amount":1})", 404, "not_found"},
      {R"({"type":"activate","user_id":"a","key":"nope"})", 404, "not_found"},
      {R"({"type":"top_up","user_id":"b","amount":100,"key":"pi_a"})", 409, "conflict"},
      {R"({"type":"top_up","user_id":"a","amount":99,"key":"pi_a"})", 409, "conflict"},
      {R"({"type":"usage","user_id":"a","ammount":5})", 400, "invalid_request"},
      {R"({"type":"usage","user_id":"a","amount":"5"})", 400, "invalid_request"},
      {R"({"type":"teleport","user_id":"a","amount":5})", 400, "invalid_request"},
      {R"({"type":"usage","user_id":"a","amount":5,"time":"2026-01-01T00:00:00Z"})", 400,
       "invalid_request"},
      {R"({"type":"usage","user_id":"a","amount":-5})", 400, "invalid_request"},
      {R"({"type":"usage","user_id":"a","amount":5, )", 400, "invalid_request"},
      {R"([1,2])", 200, nullptr},
  };
  for (const Case& c : cases) {
    HttpResult r = Post(c.body);
    EXPECT_EQ(r.status, c.status) << c.body << " -> " << r.body;
    if (c.code) {
      EXPECT_EQ(Json(r.body).Str("/error/code"), c.code) << c.body;
    }
  }
  Json ins(Post(R"({"type":"usage","user_id":"a","amount":500})").body);
  EXPECT_EQ(ins.Int("/error/balance"), 100);
  EXPECT_EQ(ins.Int("/error/amount"), 500);
  Json miss(Post(R"({"type":"usage","user_id":"a","ammount":5})").body);
  EXPECT_EQ(miss.Str("/error/field"), "ammount");
  EXPECT_EQ(client_->Get("/v1/nothing").status, 404);
  EXPECT_EQ(client_->Request("GET", "/v1/events").status, 405);
  EXPECT_EQ(client_->Get("/v1/users/a/transactions?limit=0").status, 400);
  EXPECT_EQ(client_->Get("/v1/users/a/transactions?type=bogus").status, 400);
  EXPECT_EQ(client_->Get("/v1/users/%01bad/balance").status, 400);
  // Nothing was appended by any of it, and the server still serves.
  EXPECT_EQ(Json(client_->Get("/v1/stats").body).Int("/events"), 1);
  EXPECT_EQ(Balance("a"), 100);
}

TEST_F(HttpE2E, BatchesAnswerEachCommandInOrder) {
  HttpResult r = Post(R"([
    {"type":"top_up","user_id":"a","amount":100,"key":"pi_a"},
    {"type":"usage","user_id":"a","amount":500},
    {"type":"usage","user_id":"a","ammount":1},
    {"type":"usage","user_id":"a","amount":60}
  ])");
  ASSERT_EQ(r.status, 200) << r.body;
  Json j(r.body);
  ASSERT_EQ(j.Size(""), 4u);
  EXPECT_TRUE(j.Bool("/0/ok"));
  EXPECT_EQ(j.Str("/1/error/code"), "insufficient_balance");
  EXPECT_EQ(j.Str("/2/error/field"), "ammount");
  EXPECT_EQ(j.Int("/3/balance"), 40);

  // Rejected at parsing first, last and side by side: each answer stays at
  // its command's place.
  r = Post(R"([
    {"type":"usage","user_id":"a","amount":-1},
    {"type":"usage","user_id":"a","amount":15},
    {"type":"usage","user_id":"a","amont":1},
    {"type":"usage","user_id":"a","amount":5},
    {"type":"usage","user_id":"a","amount":1,"bogus":1},
    {"type":"grant","user_id":"a","amont":2}
  ])");
  ASSERT_EQ(r.status, 200) << r.body;
  Json k(r.body);
  ASSERT_EQ(k.Size(""), 6u);
  EXPECT_EQ(k.Str("/0/error/field"), "amount");
  EXPECT_EQ(k.Int("/1/balance"), 25);
  EXPECT_EQ(k.Str("/2/error/field"), "amont");
  EXPECT_EQ(k.Int("/3/balance"), 20);
  EXPECT_EQ(k.Str("/4/error/field"), "bogus");
  EXPECT_EQ(k.Str("/5/error/field"), "amont");
  // Nothing valid: answered without the writer.
  r = Post(R"([{"type":"usage","user_id":"a","amont":1},{"type":"usage"}])");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Json(r.body).Size(""), 2u);
  EXPECT_EQ(Json(r.body).Str("/0/error/field"), "amont");
  EXPECT_EQ(Balance("a"), 20);
}

TEST_F(HttpE2E, CapnpBatchesHaveTheSameSemantics) {
  std::vector<Command> cmds = {TopUp("cap", 1000, "pi_cap"), Usage("cap", 300), Usage("cap", 5000),
                               Refund("pi_cap", 100, "re_cap")};
  HttpResult r =
      client_->Request("POST", "/v1/events", EncodeCommandBatch(cmds), "application/x-capnp");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "application/x-capnp");
  std::vector<DecodedResult> results;
  ASSERT_FALSE(DecodeResults(r.body, &results).has_value());
  ASSERT_EQ(results.size(), 4u);
  EXPECT_TRUE(results[0].ok);
  EXPECT_EQ(results[1].balance, 700);
  EXPECT_FALSE(results[2].ok);
  EXPECT_EQ(results[2].error_code, "insufficient_balance");
  EXPECT_EQ(results[3].balance, 600);
  EXPECT_EQ(Json(results[3].json).Str("/user_id"), "cap");
  HttpResult bad =
      client_->Request("POST", "/v1/events", std::string(24, '\x7f'), "application/x-capnp");
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(Balance("cap"), 600);
}

TEST_F(HttpE2E, CompactCapnpResultsLeaveOutTheJsonTheFieldsSay) {
  std::vector<Command> cmds = {TopUp("cmp", 1000, "pi_cmp"), Usage("cmp", 300), Usage("cmp", 5000),
                               Refund("pi_cmp", 100, "re_cmp"), TopUp("cmp", 1000, "pi_cmp")};
  HttpResult r = client_->Request("POST", "/v1/events?results=compact", EncodeCommandBatch(cmds),
                                  "application/x-capnp");
  ASSERT_EQ(r.status, 200) << r.body;
  std::vector<DecodedResult> results;
  ASSERT_FALSE(DecodeResults(r.body, &results).has_value());
  ASSERT_EQ(results.size(), 5u);
  // The top-up and the usage: their fields say it all.
  EXPECT_TRUE(results[0].ok);
  EXPECT_EQ(results[0].json, "");
  EXPECT_EQ(results[0].amount, 1000);
  EXPECT_EQ(results[0].balance, 1000);
  EXPECT_GT(results[0].time_us, 0);
  EXPECT_EQ(results[1].json, "");
  EXPECT_EQ(results[1].seq, results[0].seq + 1);
  EXPECT_EQ(results[1].amount, -300);
  EXPECT_EQ(results[1].applied, -300);
  EXPECT_EQ(results[1].balance, 700);
  // A rejection keeps its message; a refund names its user only in the JSON.
  EXPECT_FALSE(results[2].ok);
  EXPECT_EQ(results[2].error_code, "insufficient_balance");
  EXPECT_EQ(Json(results[2].json).Str("/error/code"), "insufficient_balance");
  EXPECT_EQ(results[3].balance, 600);
  EXPECT_EQ(Json(results[3].json).Str("/user_id"), "cmp");
  // The same top-up again: the original's result, marked.
  EXPECT_TRUE(results[4].duplicate);
  EXPECT_EQ(results[4].seq, results[0].seq);
  EXPECT_EQ(results[4].json, "");

  // Nothing else is a form, and JSON answers have no compact one: refused
  // whole, nothing appended.
  HttpResult bogus = client_->Request("POST", "/v1/events?results=short",
                                      EncodeCommandBatch({Usage("cmp", 1)}), "application/x-capnp");
  EXPECT_EQ(bogus.status, 400);
  EXPECT_EQ(Json(bogus.body).Str("/error/field"), "results");
  HttpResult json =
      client_->Request("POST", "/v1/events?results=compact",
                       R"({"type":"usage","user_id":"cmp","amount":1})", "application/json");
  EXPECT_EQ(json.status, 400);
  EXPECT_EQ(Json(json.body).Str("/error/field"), "results");
  EXPECT_EQ(Balance("cmp"), 600);
}

// A body larger than a read is read in reads as large as what has arrived,
// not 512 bytes at a time (Beast's read_size never grows a buffer that each
// request empties: a batch of 1,000 events took ~300 reads of 512 bytes).
TEST_F(HttpE2E, ALargeBatchIsReadInLargeReads) {
  std::vector<Command> cmds;
  for (int i = 0; i < 1000; ++i) {
    cmds.push_back(Grant("big" + std::to_string(i % 10), 7, "grant-" + std::to_string(i)));
  }
  std::string body = EncodeCommandBatch(cmds);
  ASSERT_GT(body.size(), 64u << 10);  // more than one read's worth
  auto counters = [&] {
    std::string metrics = client_->Get("/metrics").body;
    return std::pair(MetricValue(metrics, "ledger_http_reads_total").value_or(-1),
                     MetricValue(metrics, "ledger_http_received_bytes_total").value_or(-1));
  };
  auto [reads_before, bytes_before] = counters();
  HttpResult r = client_->Request("POST", "/v1/events", body, "application/x-capnp");
  ASSERT_EQ(r.status, 200) << r.body;
  auto [reads_after, bytes_after] = counters();
  std::vector<DecodedResult> results;
  ASSERT_FALSE(DecodeResults(r.body, &results).has_value());
  ASSERT_EQ(results.size(), 1000u);
  EXPECT_EQ(results.back().balance, 700);
  EXPECT_EQ(Balance("big9"), 700);
  // Between the two snapshots: the batch and the second /metrics request.
  int64_t reads = reads_after - reads_before;
  int64_t bytes = bytes_after - bytes_before;
  ASSERT_GT(reads, 1);
  EXPECT_GT(bytes, static_cast<int64_t>(body.size()));
  EXPECT_GE(bytes / reads, 4096) << reads << " reads of " << bytes << " bytes";
}

TEST_F(HttpE2E, TransactionsPageNewestFirst) {
  for (int i = 1; i <= 12; ++i) {
    PostOk(R"({"type":"grant","user_id":"h","amount":)" + std::to_string(i) + "}");
  }
  PostOk(R"({"type":"usage","user_id":"h","amount":3,"metadata":{"graph_exec_id":"g"}})");
  Json first(client_->Get("/v1/users/h/transactions?limit=5").body);
  ASSERT_EQ(first.Size("/transactions"), 5u);
  EXPECT_EQ(first.Int("/transactions/0/seq"), 13);
  EXPECT_EQ(first.Int("/transactions/0/amount"), -3);
  EXPECT_EQ(first.Int("/transactions/0/running_balance"), 75);
  EXPECT_EQ(first.Str("/transactions/0/metadata/graph_exec_id"), "g");
  int64_t next = first.Int("/next_before_seq");
  Json second(
      client_->Get("/v1/users/h/transactions?limit=5&before_seq=" + std::to_string(next)).body);
  EXPECT_EQ(second.Int("/transactions/0/seq"), 8);
  Json grants(client_->Get("/v1/users/h/transactions?type=grant&limit=1000").body);
  EXPECT_EQ(grants.Size("/transactions"), 12u);
  EXPECT_TRUE(grants.IsNull("/next_before_seq"));
}

TEST_F(HttpE2E, GroupedHistoryAndPointInTimeBalances) {
  std::vector<std::pair<int64_t, int64_t>> answered;  // seq, balance in the response
  auto post = [&](const std::string& body) {
    Json r = PostOk(body);
    answered.emplace_back(r.Int("/seq"), r.Int("/balance"));
  };
  post(R"({"type":"top_up","user_id":"p","amount":500,"key":"pi_p"})");
  for (int node = 0; node < 4; ++node) {
    post(R"({"type":"usage","user_id":"p","amount":)" + std::to_string(10 + node) +
         R"(,"metadata":{"graph_exec_id":"run-1","node_id":"n)" + std::to_string(node) + R"("}})");
  }
  post(R"({"type":"usage","user_id":"p","amount":5,"metadata":{"graph_exec_id":"run-2"}})");
  post(R"({"type":"grant","user_id":"p","amount":1})");
  Json grouped(client_->Get("/v1/users/p/transactions?group_by=graph_exec_id").body);
  ASSERT_EQ(grouped.Size("/transactions"), 4u);
  EXPECT_EQ(grouped.Str("/transactions/2/graph_exec_id"), "run-1");
  EXPECT_EQ(grouped.Int("/transactions/2/node_count"), 4);
  EXPECT_EQ(grouped.Int("/transactions/2/amount"), -46);
  EXPECT_EQ(grouped.Int("/transactions/2/running_balance"), 454);
  EXPECT_EQ(grouped.Int("/transactions/2/first_seq"), answered[1].first);
  EXPECT_EQ(client_->Get("/v1/users/p/transactions?group_by=node").status, 400);

  for (const auto& [seq, balance] : answered) {
    Json at(client_->Get("/v1/users/p/balance?at_seq=" + std::to_string(seq)).body);
    EXPECT_EQ(at.Int("/balance"), balance) << "at seq " << seq;
    EXPECT_EQ(at.Int("/seq"), seq);
  }
  Json before(client_->Get("/v1/users/p/balance?at=2000-01-01T00:00:00Z").body);
  EXPECT_EQ(before.Int("/balance"), 0);
  EXPECT_TRUE(before.IsNull("/updated_at"));
  Json now(client_->Get("/v1/users/p/balance?at=2999-01-01T00:00:00Z").body);
  EXPECT_EQ(now.Int("/balance"), 450);
  EXPECT_EQ(client_->Get("/v1/users/p/balance?at_seq=999999").status, 400);
  EXPECT_EQ(client_->Get("/v1/users/p/balance?at=yesterday").status, 400);
  EXPECT_EQ(client_->Get("/v1/users/p/balance?at_seq=1&at=2999-01-01T00:00:00Z").status, 400);
}

TEST_F(HttpE2E, SeedScenariosOverManyConnections) {
  PostOk(R"({"type":"top_up","user_id":"conc","amount":1000,"key":"pi_conc"})");
  // Five concurrent refunds of 100, each on its own connection.
  std::vector<int64_t> running(5);
  std::vector<std::thread> threads;
  for (int i = 0; i < 5; ++i) {
    threads.emplace_back([&, i] {
      HttpClient c(server_->port());
      HttpResult r = c.Post(R"({"type":"refund","payment_key":"pi_conc","amount":100,"key":"re_)" +
                            std::to_string(i) + "\"}");
      running[i] = Json(r.body).Int("/balance");
    });
  }
  for (auto& t : threads) t.join();
  threads.clear();
  EXPECT_EQ(std::set<int64_t>(running.begin(), running.end()),
            (std::set<int64_t>{500, 600, 700, 800, 900}));
  EXPECT_EQ(Balance("conc"), 500);

  // 64 connections spending 1 credit each, 20 times, from 1,000: nothing lost.
  PostOk(R"({"type":"top_up","user_id":"many","amount":1000,"key":"pi_many"})");
  std::atomic<int> accepted{0};
  std::set<int64_t> balances;
  std::mutex mu;
  for (int i = 0; i < 64; ++i) {
    threads.emplace_back([&] {
      HttpClient c(server_->port());
      for (int k = 0; k < 20; ++k) {
        HttpResult r = c.Post(R"({"type":"usage","user_id":"many","amount":1})");
        if (r.status == 200) {
          accepted++;
          std::lock_guard<std::mutex> lock(mu);
          balances.insert(Json(r.body).Int("/balance"));
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(accepted.load(), 1000);   // 1,280 asked; only 1,000 credits
  EXPECT_EQ(balances.size(), 1000u);  // every running balance distinct
  EXPECT_EQ(Balance("many"), 0);

  // Underflow: INT_MIN + 100, refund 200 -> INT_MIN.
  PostOk(R"({"type":"top_up","user_id":"under","amount":100000,"key":"pi_under"})");
  PostOk(
      R"({"type":"adjust","user_id":"under","balance":-2147483548,"metadata":{"reason":"test"}})");
  Json u = PostOk(R"({"type":"refund","payment_key":"pi_under","amount":200,"key":"re_u"})");
  EXPECT_EQ(u.Int("/balance"), kIntMin);
}

TEST_F(HttpE2E, MonthlyRefillAndPricesFromFlags) {
  std::string prices = dir_.Sub("prices.json");
  std::ofstream(prices)
      << R"({"llm":[{"cost":7,"filter":{"credentials":{"provider":"platform"}}}]})";
  Start({"--monthly-refill", "1000", "--prices", prices, "--allow-client-time"});
  EXPECT_EQ(Balance("new-user"), 1000);
  Json priced = PostOk(
      R"({"type":"usage","user_id":"new-user","block_id":"llm","inputs":{"credentials":{"provider":"platform"}}})");
  EXPECT_EQ(priced.Int("/amount"), -7);
  EXPECT_EQ(priced.Int("/rule"), 0);
  Json own = PostOk(
      R"({"type":"usage","user_id":"new-user","block_id":"llm","inputs":{"credentials":{"provider":"own"}}})");
  EXPECT_EQ(own.Int("/amount"), 0);
  EXPECT_TRUE(own.IsNull("/rule"));
  Json later =
      PostOk(R"({"type":"usage","user_id":"new-user","amount":1,"time":"2099-02-01T00:00:00Z"})");
  EXPECT_EQ(later.Int("/balance"), 999);  // refilled to 1000 in Feb 2099 first, then -1
}

TEST_F(HttpE2E, AuthWithABearerToken) {
  Start({}, {{"LEDGER_TOKEN", "s3cret-token"}});
  HttpClient none(server_->port());
  EXPECT_EQ(none.Get("/v1/stats").status, 401);
  EXPECT_EQ(Json(none.Get("/v1/users/a/balance").body).Str("/error/code"), "unauthorized");
  EXPECT_EQ(none.Get("/healthz").status, 200);
  HttpClient wrong(server_->port(), "s3cret-tokem");
  EXPECT_EQ(wrong.Post(R"({"type":"grant","user_id":"a","amount":1})").status, 401);
  HttpClient right(server_->port(), "s3cret-token");
  EXPECT_EQ(right.Post(R"({"type":"grant","user_id":"a","amount":1})").status, 200);
  EXPECT_EQ(Json(right.Get("/v1/stats").body).Int("/events"), 1);
}

TEST_F(HttpE2E, RefusesToListenBeyondLoopbackWithoutAToken) {
  server_->Stop(SIGTERM);
  const char* binary = std::getenv("LEDGERD");
  std::string cmd = std::string(binary) + " --listen 0.0.0.0:0 --data " + dir_.Sub("other") +
                    " > " + dir_.Sub("refuse.log") + " 2>&1";
  int rc = std::system(cmd.c_str());
  EXPECT_NE(rc, 0);
  std::ifstream in(dir_.Sub("refuse.log"));
  std::string log((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(log.find("without a token"), std::string::npos) << log;
  server_.reset();
}

// --flush-io: table files written through the page cache (the default) or
// with O_DIRECT, as RocksDB's options file in the data directory records; a
// word that is neither is refused by name.
TEST_F(HttpE2E, FlushIoFromTheFlag) {
  // From RocksDB's newest options file (OPTIONS-N, N growing with each open).
  auto direct_io_option = [&]() {
    std::filesystem::path newest;
    uint64_t newest_number = 0;
    for (const auto& entry : std::filesystem::directory_iterator(dir_.Sub("data"))) {
      std::string name = entry.path().filename().string();
      if (name.rfind("OPTIONS-", 0) != 0) continue;
      uint64_t number = std::stoull(name.substr(8));
      if (number >= newest_number) {
        newest_number = number;
        newest = entry.path();
      }
    }
    std::ifstream in(newest);
    for (std::string line; std::getline(in, line);) {
      size_t at = line.find("use_direct_io_for_flush_and_compaction=");
      if (at != std::string::npos) return line.substr(line.find('=', at) + 1);
    }
    return std::string("(not in ") + newest.string() + ")";
  };
  EXPECT_EQ(direct_io_option(), "false");
  server_->Stop(SIGTERM);
  Start({"--flush-io", "direct"});
  PostOk(R"({"type":"grant","user_id":"a","amount":5})");
  // Where the file system refuses O_DIRECT (tmpfs), the server says so and
  // writes through the page cache all the same.
  const std::string direct =
      server_->Output().find("refuses O_DIRECT") == std::string::npos ? "true" : "false";
  EXPECT_EQ(direct_io_option(), direct);
  server_->Stop(SIGTERM);
  Start({"--flush-io", "buffered"});
  EXPECT_EQ(Balance("a"), 5);
  EXPECT_EQ(direct_io_option(), "false");
  server_->Stop(SIGTERM);
  const char* binary = std::getenv("LEDGERD");
  std::string cmd = std::string(binary) + " --flush-io sideways --listen 127.0.0.1:0 --data " +
                    dir_.Sub("other") + " > " + dir_.Sub("flush-io.log") + " 2>&1";
  EXPECT_NE(std::system(cmd.c_str()), 0);
  std::ifstream in(dir_.Sub("flush-io.log"));
  std::string log((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(log.find("--flush-io wants direct or buffered"), std::string::npos) << log;
  server_.reset();
}

// --listen unix:PATH: the same API over a Unix-domain socket; a socket file
// left by a killed server is replaced, a live server's or a plain file's is
// refused, and a clean stop removes it.
TEST_F(HttpE2E, ServesOnAUnixDomainSocket) {
  server_->Stop(SIGTERM);
  server_.reset();
  std::string path = dir_.Sub("ledgerd.sock");
  auto unix_server = std::make_unique<ServerProcess>(
      dir_.Sub("data"), std::vector<std::string>{"--listen", "unix:" + path});
  ASSERT_TRUE(unix_server->started()) << unix_server->Output();
  EXPECT_EQ(unix_server->unix_path(), path);
  {
    HttpClient c(path);
    HttpResult r = c.Post(R"({"type":"top_up","user_id":"u","amount":100,"key":"pi_unix"})");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(Json(r.body).Int("/balance"), 100);
    r = c.Post(
        R"([{"type":"usage","user_id":"u","amount":30},{"type":"usage","user_id":"u","amount":100}])");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(Json(r.body).Str("/1/error/code"), "insufficient_balance") << r.body;
    EXPECT_EQ(Json(c.Get("/v1/users/u/balance").body).Int("/balance"), 70);
    EXPECT_EQ(c.Post("{not json").status, 400);
    EXPECT_EQ(c.Get("/healthz").status, 200);
  }
  // A second server on the same path is refused while the first serves.
  ServerProcess second(dir_.Sub("other"), {"--listen", "unix:" + path});
  EXPECT_FALSE(second.started());
  EXPECT_NE(second.Output().find("a server is listening there"), std::string::npos)
      << second.Output();
  EXPECT_EQ(HttpClient(path).Get("/healthz").status, 200);  // and the first still serves

  // kill -9 leaves the socket file behind; the restart replaces it.
  unix_server->Stop(SIGKILL);
  struct stat st {};
  ASSERT_EQ(::lstat(path.c_str(), &st), 0);
  unix_server = std::make_unique<ServerProcess>(
      dir_.Sub("data"), std::vector<std::string>{"--listen", "unix:" + path});
  ASSERT_TRUE(unix_server->started()) << unix_server->Output();
  EXPECT_EQ(Json(HttpClient(path).Get("/v1/users/u/balance").body).Int("/balance"), 70);
  EXPECT_EQ(unix_server->Stop(SIGTERM), 0);
  EXPECT_NE(::lstat(path.c_str(), &st), 0) << "a clean stop removes the socket file";

  // A file that is not a socket is never removed.
  { std::ofstream(path) << "keep me"; }
  ServerProcess refused(dir_.Sub("data"), {"--listen", "unix:" + path});
  EXPECT_FALSE(refused.started());
  EXPECT_NE(refused.Output().find("not a socket"), std::string::npos) << refused.Output();
  EXPECT_EQ(Slurp(path), "keep me");
}

TEST_F(HttpE2E, LimitsAndMalformedInputLoseNothing) {
  PostOk(R"({"type":"grant","user_id":"lim","amount":5})");
  {
    // A body over 16 MiB is refused from its Content-Length, before it is sent.
    boost::asio::ip::tcp::socket raw = Connect();
    boost::asio::write(raw, boost::asio::buffer(std::string(
                                "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: "
                                "application/json\r\nContent-Length: 17825792\r\n\r\n")));
    std::string reply(4096, '\0');
    boost::system::error_code ec;
    size_t n = raw.read_some(boost::asio::buffer(reply), ec);
    EXPECT_EQ(reply.substr(0, 12), "HTTP/1.1 413") << reply.substr(0, n);
    EXPECT_NE(reply.find("payload_too_large"), std::string::npos);
  }
  std::string big_meta = R"({"type":"grant","user_id":"lim","amount":1,"metadata":{"x":")" +
                         std::string(65 << 10, 'y') + "\"}}";
  HttpResult meta = Post(big_meta);
  EXPECT_EQ(meta.status, 400);
  EXPECT_EQ(Json(meta.body).Str("/error/field"), "metadata");
  std::string batch = "[";
  for (int i = 0; i < 8193; ++i)
    batch += std::string(i ? "," : "") + R"({"type":"grant","user_id":"lim","amount":1})";
  batch += "]";
  EXPECT_EQ(Post(batch).status, 400);
  HttpResult long_key =
      Post(R"({"type":"grant","user_id":"lim","amount":1,"key":")" + std::string(129, 'k') + "\"}");
  EXPECT_EQ(Json(long_key.body).Str("/error/field"), "key");
  EXPECT_EQ(Post("\xff\xfe not json").status, 400);
  EXPECT_EQ(Post("").status, 400);
  // Headers over the limit are refused too.
  HttpResult headers = client_->Request("GET", "/v1/users/" + std::string(20000, 'a') + "/balance");
  EXPECT_EQ(headers.status, 431);
  EXPECT_EQ(Balance("lim"), 5);
  EXPECT_EQ(Json(client_->Get("/v1/stats").body).Int("/events"), 1);
}

// Reads from `socket` until the server closes it; everything it sent.
std::string ReadToClose(boost::asio::ip::tcp::socket& socket) {
  std::string all;
  char buf[4096];
  for (;;) {
    boost::system::error_code ec;
    size_t n = socket.read_some(boost::asio::buffer(buf), ec);
    all.append(buf, n);
    if (ec) return all;
  }
}

TEST_F(HttpE2E, KeepAliveCloseAndPipelinedRequestsOnTheWire) {
  std::string grant = R"({"type":"grant","user_id":"w","amount":7})";
  std::string post =
      "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      "Content-Length: " +
      std::to_string(grant.size()) + "\r\n\r\n" + grant;
  {
    // Two requests in one write, the second asking to close: two answers in
    // order, then the server closes.
    boost::asio::ip::tcp::socket socket = Connect();
    std::string closing =
        "GET /v1/users/w/balance HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    boost::asio::write(socket, boost::asio::buffer(post + closing));
    std::string wire = ReadToClose(socket);
    size_t second = wire.find("HTTP/1.1 200 OK\r\n", 1);
    ASSERT_EQ(wire.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << wire;
    ASSERT_NE(second, std::string::npos) << wire;
    std::string first = wire.substr(0, second);
    EXPECT_NE(first.find("Content-Type: application/json\r\n"), std::string::npos) << first;
    EXPECT_EQ(first.find("Connection: close"), std::string::npos) << first;
    size_t body_at = first.find("\r\n\r\n") + 4;
    EXPECT_NE(first.find("Content-Length: " + std::to_string(first.size() - body_at) + "\r\n"),
              std::string::npos)
        << first;
    EXPECT_EQ(Json(first.substr(body_at)).Int("/balance"), 7);
    std::string last = wire.substr(second);
    EXPECT_NE(last.find("Connection: close\r\n"), std::string::npos) << last;
    EXPECT_EQ(Json(last.substr(last.find("\r\n\r\n") + 4)).Int("/balance"), 7);
  }
  {
    // HTTP/1.0 closes unless asked to keep the connection.
    boost::asio::ip::tcp::socket socket = Connect();
    boost::asio::write(socket, boost::asio::buffer(std::string("GET /healthz HTTP/1.0\r\n\r\n")));
    std::string wire = ReadToClose(socket);
    EXPECT_EQ(wire.rfind("HTTP/1.0 200 OK\r\n", 0), 0u) << wire;
    EXPECT_NE(wire.find("Connection: close\r\n"), std::string::npos) << wire;
  }
  {
    boost::asio::ip::tcp::socket socket = Connect();
    std::string keep = "GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    boost::asio::write(socket, boost::asio::buffer(keep + "GET /nope HTTP/1.0\r\n\r\n"));
    std::string wire = ReadToClose(socket);
    EXPECT_EQ(wire.rfind("HTTP/1.0 200 OK\r\n", 0), 0u) << wire;
    EXPECT_NE(wire.find("Connection: keep-alive\r\n"), std::string::npos) << wire;
    EXPECT_NE(wire.find("HTTP/1.0 404 Not Found\r\n"), std::string::npos) << wire;
  }
  EXPECT_EQ(Balance("w"), 7);
}

TEST_F(HttpE2E, ChunkedBodiesAndOddHeadersAreReadAsSent) {
  {
    // A body in chunks, one split inside a field name, with a chunk
    // extension and a trailer; header names in any case.
    boost::asio::ip::tcp::socket socket = Connect();
    std::string part1 = R"({"type":"grant","user_id":"chunk","am)";
    std::string part2 = R"(ount":9,"key":"c-1"})";
    auto hex = [](size_t n) {
      char b[16];
      std::snprintf(b, sizeof b, "%zx", n);
      return std::string(b);
    };
    std::string request =
        "POST /v1/events HTTP/1.1\r\nhost: x\r\ncontent-TYPE: application/json\r\n"
        "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" +
        hex(part1.size()) + ";ext=1\r\n" + part1 + "\r\n" + hex(part2.size()) + "\r\n" + part2 +
        "\r\n0\r\nX-Trailer: t\r\n\r\n";
    boost::asio::write(socket, boost::asio::buffer(request));
    std::string wire = ReadToClose(socket);
    EXPECT_EQ(wire.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << wire;
    EXPECT_EQ(Json(wire.substr(wire.find("\r\n\r\n") + 4)).Int("/balance"), 9) << wire;
  }
  {
    // A malformed chunk size: 400, and nothing recorded.
    boost::asio::ip::tcp::socket socket = Connect();
    boost::asio::write(socket, boost::asio::buffer(std::string(
                                   "POST /v1/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
                                   "chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n")));
    std::string wire = ReadToClose(socket);
    EXPECT_EQ(wire.rfind("HTTP/1.1 400", 0), 0u) << wire;
  }
  {
    // Two Content-Type fields: the first one counts (here JSON, so the
    // Cap'n Proto type after it does not make the body binary).
    boost::asio::ip::tcp::socket socket = Connect();
    std::string body = R"({"type":"grant","user_id":"chunk","amount":1,"key":"c-2"})";
    boost::asio::write(
        socket, boost::asio::buffer("POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: "
                                    "application/json\r\nContent-Type: application/x-capnp\r\n"
                                    "Connection: close\r\nContent-Length: " +
                                    std::to_string(body.size()) + "\r\n\r\n" + body));
    std::string wire = ReadToClose(socket);
    EXPECT_EQ(wire.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << wire;
  }
  EXPECT_EQ(Balance("chunk"), 10);
  EXPECT_EQ(Json(client_->Get("/v1/stats").body).Int("/events"), 2);
}

TEST_F(HttpE2E, ExpectContinueIsAnsweredBeforeTheBody) {
  // curl sends "Expect: 100-continue" with bodies over 1 MB and waits up to
  // a second for "100 Continue" before sending the body.
  std::string grant = R"({"type":"grant","user_id":"cont","amount":3,"key":"k-1"})";
  auto head = [&](const std::string& version, const std::string& body) {
    return "POST /v1/events " + version +
           "\r\nHost: x\r\nContent-Type: application/json\r\nExpect: 100-Continue\r\n"
           "Content-Length: " +
           std::to_string(body.size()) + "\r\n\r\n";
  };
  {
    boost::asio::ip::tcp::socket socket = Connect();
    // A read that would wait forever fails the test instead (5 s).
    timeval five{5, 0};
    ASSERT_EQ(::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &five, sizeof five), 0);
    boost::asio::write(socket, boost::asio::buffer(head("HTTP/1.1", grant)));
    std::string interim;
    boost::system::error_code ec;
    boost::asio::read_until(socket, boost::asio::dynamic_buffer(interim), "\r\n\r\n", ec);
    ASSERT_FALSE(ec) << ec.message() << ": " << interim;
    EXPECT_EQ(interim, "HTTP/1.1 100 Continue\r\n\r\n");
    // Then the body, and the final answer on the same connection; the next
    // request on it, with its body sent at once, gets no second invitation.
    boost::asio::write(socket, boost::asio::buffer(grant));
    std::string grant2 = R"({"type":"grant","user_id":"cont","amount":4,"key":"k-2"})";
    boost::asio::write(socket, boost::asio::buffer(head("HTTP/1.1", grant2) + grant2));
    std::string last = R"({"type":"grant","user_id":"cont","amount":5,"key":"k-3"})";
    std::string close_head = head("HTTP/1.1", last);
    close_head.insert(close_head.size() - 2, "Connection: close\r\n");
    boost::asio::write(socket, boost::asio::buffer(close_head + last));
    std::string wire = ReadToClose(socket);
    EXPECT_EQ(wire.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << wire;
    EXPECT_EQ(wire.find("100 Continue"), std::string::npos) << wire;
    size_t answers = 0;
    for (size_t at = wire.find("HTTP/1.1 200 OK"); at != std::string::npos;
         at = wire.find("HTTP/1.1 200 OK", at + 1)) {
      ++answers;
    }
    EXPECT_EQ(answers, 3u) << wire;
  }
  {
    // Part of the body sent with the header: the client is sending it
    // already, so no invitation, before or after the rest arrives.
    boost::asio::ip::tcp::socket socket = Connect();
    std::string grant5 = R"({"type":"grant","user_id":"cont","amount":7,"key":"k-5"})";
    std::string close_head = head("HTTP/1.1", grant5);
    close_head.insert(close_head.size() - 2, "Connection: close\r\n");
    boost::asio::write(socket, boost::asio::buffer(close_head + grant5.substr(0, 10)));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    boost::asio::write(socket, boost::asio::buffer(grant5.substr(10)));
    std::string wire = ReadToClose(socket);
    EXPECT_EQ(wire.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << wire;
  }
  {
    // HTTP/1.0 has no interim answers: the body is read as sent.
    boost::asio::ip::tcp::socket socket = Connect();
    std::string grant4 = R"({"type":"grant","user_id":"cont","amount":6,"key":"k-4"})";
    boost::asio::write(socket, boost::asio::buffer(head("HTTP/1.0", grant4) + grant4));
    std::string wire = ReadToClose(socket);
    EXPECT_EQ(wire.rfind("HTTP/1.0 200 OK\r\n", 0), 0u) << wire;
  }
  EXPECT_EQ(Balance("cont"), 3 + 4 + 5 + 7 + 6);
}

TEST_F(HttpE2E, HeadAnswersAsGetWithoutTheBody) {
  PostOk(R"({"type":"grant","user_id":"h","amount":2})");
  std::string get_body = client_->Get("/v1/users/h/balance").body;
  // HEAD then GET on one connection: the first answer's Content-Length is
  // the GET's, and no body follows it, so the second answer starts right
  // after its head.
  boost::asio::ip::tcp::socket socket = Connect();
  boost::asio::write(
      socket, boost::asio::buffer(std::string("HEAD /v1/users/h/balance HTTP/1.1\r\nHost: x\r\n\r\n"
                                              "GET /v1/users/h/balance HTTP/1.1\r\nHost: x\r\n"
                                              "Connection: close\r\n\r\n")));
  std::string wire = ReadToClose(socket);
  size_t first_end = wire.find("\r\n\r\n");
  ASSERT_NE(first_end, std::string::npos) << wire;
  std::string first = wire.substr(0, first_end + 4);
  std::string rest = wire.substr(first_end + 4);
  EXPECT_EQ(first.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << wire;
  EXPECT_NE(first.find("Content-Length: " + std::to_string(get_body.size()) + "\r\n"),
            std::string::npos)
      << wire;
  EXPECT_EQ(rest.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << wire;
  EXPECT_EQ(rest.substr(rest.find("\r\n\r\n") + 4), get_body) << wire;
}

TEST_F(HttpE2E, RequestsInPiecesAndCutShortAreReadAsSent) {
  std::string grant = R"({"type":"grant","user_id":"piece","amount":4,"key":"p-1"})";
  std::string post =
      "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      "Content-Length: " +
      std::to_string(grant.size()) + "\r\n\r\n" + grant;
  {
    // Sent in pieces, one split inside the request line, one inside a
    // header, one inside the body, each after a pause: read across reads.
    boost::asio::ip::tcp::socket socket = Connect();
    const size_t cuts[] = {0, 7, 30, post.size() - 20, post.size() - 3, post.size()};
    for (size_t i = 0; i + 1 < std::size(cuts); ++i) {
      boost::asio::write(socket, boost::asio::buffer(post.substr(cuts[i], cuts[i + 1] - cuts[i])));
      std::this_thread::sleep_for(std::chrono::milliseconds(30));
    }
    // Then the client is done sending: the request it sent whole is still
    // answered, and the server closes after it.
    socket.shutdown(boost::asio::ip::tcp::socket::shutdown_send);
    std::string wire = ReadToClose(socket);
    EXPECT_EQ(wire.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << wire;
    EXPECT_EQ(Json(wire.substr(wire.find("\r\n\r\n") + 4)).Int("/balance"), 4) << wire;
  }
  {
    // A body cut short by the end of the client's sending: 400, nothing
    // recorded.
    boost::asio::ip::tcp::socket socket = Connect();
    std::string cut = R"({"type":"grant","user_id":"piece","amount":5,"key":"p-2"})";
    boost::asio::write(
        socket, boost::asio::buffer("POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                                    std::to_string(cut.size()) + "\r\n\r\n" + cut.substr(0, 20)));
    socket.shutdown(boost::asio::ip::tcp::socket::shutdown_send);
    std::string wire = ReadToClose(socket);
    EXPECT_EQ(wire.rfind("HTTP/1.1 400", 0), 0u) << wire;
    EXPECT_NE(wire.find("malformed HTTP request"), std::string::npos) << wire;
  }
  EXPECT_EQ(Balance("piece"), 4);
  EXPECT_EQ(Json(client_->Get("/v1/stats").body).Int("/events"), 1);
}

TEST_F(HttpE2E, SlowClientsAreCutOffAndOthersServed) {
  Start({"--request-timeout", "1"});
  boost::asio::ip::tcp::socket slow = Connect();
  boost::asio::write(slow,
                     boost::asio::buffer(std::string("POST /v1/events HTTP/1.1\r\nHost: x\r\n")));
  EXPECT_EQ(client_->Get("/healthz").status, 200);  // others are served meanwhile
  // A keep-alive connection left idle after an answer is closed the same way.
  boost::asio::ip::tcp::socket idle = Connect();
  boost::asio::write(idle, boost::asio::buffer(std::string("GET /healthz HTTP/1.1\r\n\r\n")));
  auto started = std::chrono::steady_clock::now();
  std::string idle_wire = ReadToClose(idle);
  double idle_secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  EXPECT_EQ(idle_wire.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << idle_wire;
  EXPECT_GE(idle_secs, 0.9);
  EXPECT_LT(idle_secs, 10.0);  // closed by the server, not left open
  char buf[64];
  boost::system::error_code ec;
  slow.read_some(boost::asio::buffer(buf), ec);  // the server closes it after 1 s
  EXPECT_TRUE(ec == boost::asio::error::eof || ec == boost::asio::error::connection_reset)
      << ec.message();
}

TEST_F(HttpE2E, RestartKeepsEverything) {
  PostOk(R"({"type":"top_up","user_id":"r","amount":1000,"key":"pi_r"})");
  PostOk(R"({"type":"usage","user_id":"r","amount":123})");
  PostOk(R"({"type":"top_up","user_id":"r","amount":50,"pending":true,"key":"pi_p"})");
  std::string before = client_->Get("/v1/users/r/transactions").body;
  std::string hash = Json(client_->Get("/v1/stats").body).Str("/state_hash");
  client_.reset();
  EXPECT_EQ(server_->Stop(SIGTERM), 0);
  Start();
  EXPECT_EQ(client_->Get("/v1/users/r/transactions").body, before);
  EXPECT_EQ(Json(client_->Get("/v1/stats").body).Str("/state_hash"), hash);
  Json a = PostOk(R"({"type":"activate","user_id":"r","key":"pi_p"})");
  EXPECT_EQ(a.Int("/seq"), 4);
  EXPECT_EQ(a.Int("/balance"), 927);
}

TEST_F(HttpE2E, SigtermDrainsAndLosesNoAcknowledgedCommand) {
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::vector<std::pair<std::string, int64_t>> acknowledged;  // (key, seq)
  std::vector<std::thread> threads;
  for (int t = 0; t < 16; ++t) {
    threads.emplace_back([&, t] {
      try {
        HttpClient c(server_->port());
        for (int i = 0; !stop.load() && i < 100000; ++i) {
          std::string key = "k" + std::to_string(t) + "-" + std::to_string(i);
          HttpResult r = c.Post(R"({"type":"grant","user_id":"u)" + std::to_string(t % 4) +
                                R"(","amount":1,"key":")" + key + "\"}");
          if (r.status != 200) break;
          std::lock_guard<std::mutex> lock(mu);
          acknowledged.emplace_back(key, Json(r.body).Int("/seq"));
        }
      } catch (const std::exception&) {
        // The server went away mid-request: that command was not acknowledged.
      }
    });
  }
  // Stop mid-load: once a few hundred milliseconds have gone and enough is
  // acknowledged to be worth checking (a sanitizer build on a loaded machine
  // can be slow to get there).
  auto acknowledged_count = [&] {
    std::lock_guard<std::mutex> lock(mu);
    return acknowledged.size();
  };
  auto started = std::chrono::steady_clock::now();
  for (auto elapsed = std::chrono::steady_clock::duration::zero();
       elapsed < std::chrono::seconds(30) &&
       (elapsed < std::chrono::milliseconds(400) || acknowledged_count() <= 100);
       elapsed = std::chrono::steady_clock::now() - started) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  client_.reset();
  int exit_code = server_->Stop(SIGTERM);
  EXPECT_EQ(exit_code, 0) << server_->Output().substr(
      server_->Output().size() > 6000 ? server_->Output().size() - 6000 : 0);
  // Draining answered everything in flight rather than giving up on it.
  EXPECT_EQ(server_->Output().find("drain timed out"), std::string::npos);
  stop = true;
  for (auto& th : threads) th.join();
  ASSERT_GT(acknowledged.size(), 50u);
  Start();
  Json stats(client_->Get("/v1/stats").body);
  int64_t last = stats.Int("/last_seq");
  for (const auto& [key, seq] : acknowledged) {
    ASSERT_LE(seq, last) << key;
  }
  // Spot-check: every acknowledged key is there with its seq (a retry is a duplicate).
  for (size_t i = 0; i < acknowledged.size(); i += acknowledged.size() / 40 + 1) {
    const auto& [key, seq] = acknowledged[i];
    int t = std::atoi(key.c_str() + 1);
    Json j = PostOk(R"({"type":"grant","user_id":"u)" + std::to_string(t % 4) +
                    R"(","amount":1,"key":")" + key + "\"}");
    EXPECT_TRUE(j.Bool("/duplicate")) << key;
    EXPECT_EQ(j.Int("/seq"), seq) << key;
  }
}

TEST_F(HttpE2E, OneClientAtATimeIsWrittenByItsHttpThreadAndAnsweredInOrder) {
  // One client, one request at a time: once the writer has found nothing
  // else waiting a few times, the HTTP thread writes each command itself.
  // Every answer must still be the durable one, in order, pipelined or not.
  PostOk(R"({"type":"grant","user_id":"c","amount":1000,"key":"g"})");
  for (int i = 1; i <= 30; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    Json j = PostOk(R"({"type":"usage","user_id":"c","amount":3,"key":"k)" + std::to_string(i) +
                    R"("})");
    EXPECT_EQ(j.Int("/balance"), 1000 - 3 * i);
    EXPECT_EQ(j.Int("/seq"), i + 1);
  }
  // Three requests in one write: three answers, in order.
  auto usage = [](int i) {
    std::string body =
        R"({"type":"usage","user_id":"c","amount":1,"key":"p)" + std::to_string(i) + R"("})";
    return "POST /v1/events HTTP/1.1\r\nHost: x\r\n" +
           std::string(i == 3 ? "Connection: close\r\n" : "") +
           "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  };
  boost::asio::ip::tcp::socket socket = Connect();
  boost::asio::write(socket, boost::asio::buffer(usage(1) + usage(2) + usage(3)));
  std::string wire = ReadToClose(socket);
  size_t at = 0;
  for (int i = 1; i <= 3; ++i) {
    at = wire.find("\r\n\r\n", at);
    ASSERT_NE(at, std::string::npos) << wire;
    at += 4;
    Json j(wire.substr(at, wire.find('}', at) + 1 - at));
    EXPECT_EQ(j.Int("/balance"), 910 - i) << wire;
    EXPECT_EQ(j.Str("/key"), "p" + std::to_string(i)) << wire;
  }
  std::string metrics = client_->Get("/metrics").body;
  std::optional<int64_t> caller_groups = MetricValue(metrics, "ledger_caller_groups_total");
  ASSERT_TRUE(caller_groups.has_value()) << metrics;
  EXPECT_GT(*caller_groups, 0) << "no HTTP thread wrote a group";
  server_->Stop(SIGTERM);
  Start();  // the log agrees with the answers
  EXPECT_EQ(Balance("c"), 907);
}

TEST_F(HttpE2E, AnHttpThreadServingOtherConnectionsLeavesTheWriteToTheWriter) {
  // One HTTP thread for every connection: were it to write and sync one
  // client's command itself, the others' requests would wait unread behind
  // each fdatasync (64 connections: 10,000 commands/s instead of 75,000).
  Start({"--io-threads", "1"});
  auto other = std::make_unique<HttpClient>(server_->port());
  EXPECT_EQ(other->Get("/healthz").status, 200);  // open, and idle from now on
  auto caller_groups = [&] {
    std::optional<int64_t> n =
        MetricValue(client_->Get("/metrics").body, "ledger_caller_groups_total");
    EXPECT_TRUE(n.has_value());
    return n.value_or(-1);
  };
  auto usages = [&](const std::string& prefix, int first) {
    for (int i = 0; i < 20; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      Json j = PostOk(R"({"type":"usage","user_id":"t","amount":1,"allow_negative":true,"key":")" +
                      prefix + std::to_string(i) + R"("})");
      EXPECT_EQ(j.Int("/balance"), -(first + i));
    }
  };
  usages("a", 1);
  EXPECT_EQ(caller_groups(), 0) << "the HTTP thread synced a command with another connection open";
  // The other connection gone, the thread serves one client: it writes that
  // client's commands itself again.
  other.reset();
  usages("b", 21);
  EXPECT_GT(caller_groups(), 0) << "one client alone was never written by its HTTP thread";
  EXPECT_EQ(Balance("t"), -40);
}

TEST_F(HttpE2E, AReadThroughALongHistoryHoldsUpNoOtherConnection) {
  // A filtered history that matches nothing reads up to kHistoryScanMax
  // (100,000) events of the user's chain before it answers with a cursor.
  // With one I/O thread for every connection, that read runs elsewhere: a
  // command on another connection is answered while it goes on.
  Start({"--io-threads", "1"});
  constexpr int kBatches = 16, kPerBatch = 8192;  // 131,072 events
  for (int b = 0; b < kBatches; ++b) {
    std::string body = "[";
    for (int i = 0; i < kPerBatch; ++i) {
      if (i) body += ',';
      body += R"({"type":"usage","user_id":"deep","amount":1,"allow_negative":true})";
    }
    body += "]";
    ASSERT_EQ(Post(body).status, 200);
  }
  boost::asio::ip::tcp::socket reader = Connect();
  boost::asio::write(reader, boost::asio::buffer(std::string(
                                 "GET /v1/users/deep/transactions?type=refund&limit=1 HTTP/1.1\r\n"
                                 "Host: x\r\nConnection: close\r\n\r\n")));
  Json j = PostOk(R"({"type":"grant","user_id":"other","amount":5})");
  EXPECT_EQ(j.Int("/balance"), 5);
  EXPECT_EQ(reader.available(), 0u) << "the history was answered before a command sent after it";
  std::string wire = ReadToClose(reader);
  EXPECT_NE(wire.find("200 OK"), std::string::npos) << wire;
  // Nothing matched in the events read; the cursor goes on from the oldest.
  EXPECT_NE(wire.find(R"({"transactions":[],"next_before_seq":31073})"), std::string::npos) << wire;
}

TEST_F(HttpE2E, MetricsAndHealth) {
  PostOk(R"({"type":"grant","user_id":"m","amount":5})");
  Post(R"({"type":"usage","user_id":"m","amount":50})");
  HttpResult health = client_->Get("/healthz");
  EXPECT_EQ(health.status, 200);
  HttpResult metrics = client_->Get("/metrics");
  EXPECT_EQ(metrics.status, 200);
  for (const char* needle :
       {"ledger_events_total{type=\"grant\"} 1",
        "ledger_rejections_total{code=\"insufficient_balance\"} 1",
        "ledger_sync_seconds_bucket{le=", "ledger_group_events_count", "ledger_users 1",
        "ledger_last_seq 1", "ledger_http_request_seconds_bucket{route=\"events\",le=",
        "ledger_http_requests_total{route=\"events\",status=\"2xx\"} 1",
        // The WAL RocksDB opened with is the spare made at the start; no spare
        // was made from a deleted WAL (nothing was flushed).
        "ledger_wal_files_total{over=\"spare\"} 1", "ledger_wal_files_total{over=\"nothing\"} 0",
        "ledger_wal_spares_total{from=\"wal\"} 0"}) {
    EXPECT_NE(metrics.body.find(needle), std::string::npos) << needle;
  }
  // Open connections, whichever I/O thread serves each: this one and another.
  HttpClient other(server_->port());
  EXPECT_EQ(other.Get("/healthz").status, 200);
  EXPECT_EQ(MetricValue(client_->Get("/metrics").body, "ledger_http_connections"), 2);
}

}  // namespace
}  // namespace ledger::testing
