// ledger-loadgen: drives a running ledgerd and reports throughput and latency.
//
//   ledger-loadgen --url http://127.0.0.1:8080 --mode single --connections 64 --seconds 10
//   ledger-loadgen --mode json-batch --batch 1000 --connections 4
//   ledger-loadgen --mode capnp-batch --batch 1000 --connections 4
//   ledger-loadgen --mode single --connections 64 --rate 20000   (fixed request rate)
//
// Workload (the benchmark of issue 6): USERS users, each first given a
// starting balance; then 80% usage (cost 1-10, a small metadata object) and
// 20% top-ups of 1000 with fresh payment ids. Every command is durable when
// answered (the server's sync mode decides).
#include <utility>  // before Boost 1.74's asio, which misses it under C++20

#include <algorithm>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "engine/capnp_batch.h"

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kHelp = R"(ledger-loadgen: load for ledgerd, with throughput and latency.

  --url URL            server (default http://127.0.0.1:8080)
  --mode MODE          single | json-batch | capnp-batch (default single)
  --batch N            commands per request in batch modes (default 1000)
  --connections N      concurrent connections (default 64)
  --threads N          client I/O threads (default 1)
  --seconds S          how long to run (default 10)
  --rate R             requests/s in total, paced (default: as fast as answers come)
  --users N            distinct users (default 10000)
  --token T            bearer token (default env LEDGER_TOKEN)
  --no-setup           skip giving every user a starting balance
)";

struct Options {
  std::string host = "127.0.0.1";
  std::string port = "8080";
  std::string mode = "single";
  int batch = 1000;
  int connections = 64;
  int threads = 1;
  double seconds = 10;
  double rate = 0;
  int users = 10000;
  std::string token;
  bool setup = true;
};

struct Totals {
  std::mutex mu;
  std::vector<double> latencies_us;
  uint64_t requests = 0;
  uint64_t events_ok = 0;
  uint64_t events_rejected = 0;
  uint64_t http_errors = 0;
};

std::string RunId() {
  return std::to_string(std::chrono::system_clock::now().time_since_epoch().count());
}

// One command of the workload, as JSON and as a Command.
ledger::Command MakeCommand(std::mt19937_64& rng, const Options& o, const std::string& run,
                            uint64_t n) {
  ledger::Command c;
  c.user_id = "user-" + std::to_string(rng() % static_cast<uint64_t>(o.users));
  if (rng() % 5 == 0) {
    c.kind = ledger::Kind::kTopUp;
    c.amount = 1000;
    c.key = "pi-" + run + "-" + std::to_string(n);
  } else {
    c.kind = ledger::Kind::kUsage;
    c.amount = 1 + static_cast<int64_t>(rng() % 10);
    c.metadata = R"({"graph_exec_id":"g-)" + std::to_string(n) + R"(","node_id":"n-7"})";
    c.has_metadata = true;
  }
  c.has_amount = true;
  return c;
}

std::string ToJson(const ledger::Command& c) {
  std::string s = R"({"type":")" + std::string(ledger::KindName(c.kind)) + R"(","user_id":")" +
                  c.user_id + R"(","amount":)" + std::to_string(c.amount);
  if (!c.key.empty()) s += R"(,"key":")" + c.key + "\"";
  if (c.has_metadata) s += R"(,"metadata":)" + c.metadata;
  return s + "}";
}

class Conn : public std::enable_shared_from_this<Conn> {
 public:
  Conn(net::io_context& ioc, const Options& o, Totals& totals, Clock::time_point end, int id,
       double interval_s)
      : stream_(net::make_strand(ioc)),
        timer_(stream_.get_executor()),
        o_(o),
        totals_(totals),
        end_(end),
        rng_(0x9e3779b97f4a7c15ULL * static_cast<uint64_t>(id + 1)),
        run_(RunId() + "-" + std::to_string(id)),
        interval_(interval_s) {}

  void Start(const tcp::resolver::results_type& endpoints) {
    stream_.async_connect(endpoints,
                          [self = shared_from_this()](beast::error_code ec, const tcp::endpoint&) {
                            if (ec) {
                              std::fprintf(stderr, "connect: %s\n", ec.message().c_str());
                              return;
                            }
                            self->next_send_ = Clock::now();
                            self->Send();
                          });
  }

 private:
  void Send() {
    if (Clock::now() >= end_) return Finish();
    if (interval_ > 0) {
      auto now = Clock::now();
      if (next_send_ > now) {
        timer_.expires_at(next_send_);
        timer_.async_wait([self = shared_from_this()](beast::error_code) { self->DoSend(); });
        next_send_ +=
            std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(interval_));
        return;
      }
      next_send_ +=
          std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(interval_));
    }
    DoSend();
  }

  void DoSend() {
    req_ = {http::verb::post, "/v1/events", 11};
    req_.set(http::field::host, o_.host);
    if (!o_.token.empty()) req_.set(http::field::authorization, "Bearer " + o_.token);
    if (o_.mode == "single") {
      req_.set(http::field::content_type, "application/json");
      req_.body() = ToJson(MakeCommand(rng_, o_, run_, n_++));
      expected_ = 1;
    } else {
      std::vector<ledger::Command> cmds;
      for (int i = 0; i < o_.batch; ++i) cmds.push_back(MakeCommand(rng_, o_, run_, n_++));
      expected_ = o_.batch;
      if (o_.mode == "capnp-batch") {
        req_.set(http::field::content_type, "application/x-capnp");
        req_.body() = ledger::EncodeCommandBatch(cmds);
      } else {
        req_.set(http::field::content_type, "application/json");
        std::string body = "[";
        for (size_t i = 0; i < cmds.size(); ++i) body += (i ? "," : "") + ToJson(cmds[i]);
        req_.body() = body + "]";
      }
    }
    req_.prepare_payload();
    sent_ = Clock::now();
    http::async_write(stream_, req_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return self->Fail(ec);
      self->res_ = {};
      http::async_read(self->stream_, self->buf_, self->res_,
                       [self](beast::error_code ec2, size_t) { self->OnRead(ec2); });
    });
  }

  void OnRead(beast::error_code ec) {
    if (ec) return Fail(ec);
    latencies_.push_back(std::chrono::duration<double, std::micro>(Clock::now() - sent_).count());
    ++requests_;
    unsigned status = res_.result_int();
    const std::string& body = res_.body();
    if (o_.mode == "capnp-batch" && status == 200) {
      std::vector<ledger::DecodedResult> results;
      ledger::DecodeResults(body, &results);
      for (const auto& r : results) (r.ok ? ok_ : rejected_)++;
    } else if (status == 200 || status == 422 || status == 409 || status == 404) {
      // Count results by their "ok" flags (one for single, many for a batch).
      uint64_t oks = 0;
      for (size_t p = body.find("\"ok\":true"); p != std::string::npos;
           p = body.find("\"ok\":true", p + 1))
        ++oks;
      ok_ += oks;
      rejected_ += static_cast<uint64_t>(expected_) - std::min<uint64_t>(oks, expected_);
    } else {
      ++http_errors_;
    }
    Send();
  }

  void Fail(beast::error_code ec) {
    std::fprintf(stderr, "request failed: %s\n", ec.message().c_str());
    ++http_errors_;
    Finish();
  }

  void Finish() {
    if (finished_) return;
    finished_ = true;
    std::lock_guard<std::mutex> lock(totals_.mu);
    totals_.latencies_us.insert(totals_.latencies_us.end(), latencies_.begin(), latencies_.end());
    totals_.requests += requests_;
    totals_.events_ok += ok_;
    totals_.events_rejected += rejected_;
    totals_.http_errors += http_errors_;
  }

  beast::tcp_stream stream_;
  net::steady_timer timer_;
  const Options& o_;
  Totals& totals_;
  Clock::time_point end_;
  std::mt19937_64 rng_;
  std::string run_;
  double interval_;
  Clock::time_point next_send_;
  Clock::time_point sent_;
  http::request<http::string_body> req_;
  http::response<http::string_body> res_;
  beast::flat_buffer buf_;
  uint64_t n_ = 0;
  int expected_ = 1;
  std::vector<double> latencies_;
  uint64_t requests_ = 0, ok_ = 0, rejected_ = 0, http_errors_ = 0;
  bool finished_ = false;
};

// Gives every user a starting balance (JSON batches of 1000 grants).
void Setup(const Options& o, const tcp::resolver::results_type& endpoints) {
  net::io_context ioc;
  beast::tcp_stream stream(ioc);
  stream.connect(endpoints);
  beast::flat_buffer buf;
  for (int start = 0; start < o.users; start += 1000) {
    std::string body = "[";
    for (int u = start; u < std::min(o.users, start + 1000); ++u) {
      body += std::string(u == start ? "" : ",") + R"({"type":"grant","user_id":"user-)" +
              std::to_string(u) + R"(","amount":1000000000,"key":"loadgen-start"})";
    }
    body += "]";
    http::request<http::string_body> req{http::verb::post, "/v1/events", 11};
    req.set(http::field::host, o.host);
    req.set(http::field::content_type, "application/json");
    if (!o.token.empty()) req.set(http::field::authorization, "Bearer " + o.token);
    req.body() = body;
    req.prepare_payload();
    http::write(stream, req);
    http::response<http::string_body> res;
    http::read(stream, buf, res);
    if (res.result_int() != 200) {
      std::fprintf(stderr, "setup failed: %u %s\n", res.result_int(),
                   res.body().substr(0, 300).c_str());
      std::exit(1);
    }
  }
}

double Percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  size_t i = std::min(v.size() - 1, static_cast<size_t>(p / 100.0 * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<long>(i), v.end());
  return v[i];
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (const char* t = std::getenv("LEDGER_TOKEN")) o.token = t;
  for (int i = 1; i < argc; ++i) {
    std::string f = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", f.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (f == "--help") {
      std::fputs(kHelp, stdout);
      return 0;
    } else if (f == "--url") {
      std::string url = next();
      if (url.rfind("http://", 0) == 0) url = url.substr(7);
      while (!url.empty() && url.back() == '/') url.pop_back();
      size_t colon = url.rfind(':');
      o.host = url.substr(0, colon);
      o.port = colon == std::string::npos ? "80" : url.substr(colon + 1);
    } else if (f == "--mode") {
      o.mode = next();
    } else if (f == "--batch") {
      o.batch = std::atoi(next().c_str());
    } else if (f == "--connections") {
      o.connections = std::atoi(next().c_str());
    } else if (f == "--threads") {
      o.threads = std::atoi(next().c_str());
    } else if (f == "--seconds") {
      o.seconds = std::atof(next().c_str());
    } else if (f == "--rate") {
      o.rate = std::atof(next().c_str());
    } else if (f == "--users") {
      o.users = std::atoi(next().c_str());
    } else if (f == "--token") {
      o.token = next();
    } else if (f == "--no-setup") {
      o.setup = false;
    } else {
      std::fprintf(stderr, "unknown flag %s (see --help)\n", f.c_str());
      return 2;
    }
  }
  if (o.mode != "single" && o.mode != "json-batch" && o.mode != "capnp-batch") {
    std::fprintf(stderr, "--mode is single, json-batch or capnp-batch\n");
    return 2;
  }
  if (o.batch < 1 || o.batch > 8192 || o.connections < 1 || o.users < 1 || o.threads < 1) {
    std::fprintf(stderr, "--batch 1..8192, --connections, --users and --threads at least 1\n");
    return 2;
  }
  net::io_context resolve_ctx;
  tcp::resolver resolver(resolve_ctx);
  auto endpoints = resolver.resolve(o.host, o.port);
  if (o.setup) Setup(o, endpoints);

  net::io_context ioc(o.threads);
  Totals totals;
  auto start = Clock::now();
  auto end =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.seconds));
  double interval = o.rate > 0 ? o.connections / o.rate : 0;
  for (int c = 0; c < o.connections; ++c) {
    std::make_shared<Conn>(ioc, o, totals, end, c, interval)->Start(endpoints);
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < o.threads; ++t) threads.emplace_back([&] { ioc.run(); });
  for (auto& t : threads) t.join();
  double secs = std::chrono::duration<double>(Clock::now() - start).count();

  auto& l = totals.latencies_us;
  double p50 = Percentile(l, 50), p90 = Percentile(l, 90), p99 = Percentile(l, 99),
         max = l.empty() ? 0 : *std::max_element(l.begin(), l.end());
  std::printf("mode %s, batch %d, connections %d, %.1f s\n", o.mode.c_str(),
              o.mode == "single" ? 1 : o.batch, o.connections, secs);
  std::printf("requests   %llu (%.0f/s)\n", static_cast<unsigned long long>(totals.requests),
              static_cast<double>(totals.requests) / secs);
  std::printf("events ok  %llu (%.0f/s), rejected %llu, http errors %llu\n",
              static_cast<unsigned long long>(totals.events_ok),
              static_cast<double>(totals.events_ok) / secs,
              static_cast<unsigned long long>(totals.events_rejected),
              static_cast<unsigned long long>(totals.http_errors));
  std::printf("latency    p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms\n", p50 / 1e3,
              p90 / 1e3, p99 / 1e3, max / 1e3);
  return totals.http_errors == 0 ? 0 : 1;
}
