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

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <queue>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "engine/capnp_batch.h"
#include "tools/http_head.h"
#include "tools/malloc_tuning.h"
#include "tools/server_url.h"

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using Clock = std::chrono::steady_clock;
using ledger::ParseServerUrl;
using ledger::ServerEndpoints;
using ledger::ServerUrl;

namespace {

constexpr const char* kHelp = R"(ledger-loadgen: load for ledgerd, with throughput and latency.

  --url URL            server (default http://127.0.0.1:8080; unix:PATH for a
                       ledgerd listening on a Unix-domain socket)
  --mode MODE          single | json-batch | capnp-batch (default single)
  --batch N            commands per request in batch modes (default 1000)
  --results FORM       full | compact: Cap'n Proto results with every result's
                       JSON, or only where the fields do not say it all
                       (POST /v1/events?results=compact; default full)
  --connections N      concurrent connections (default 64)
  --threads N          client I/O threads (default 1)
  --seconds S          how long to run (default 10)
  --rate R             requests/s in total, paced (default: as fast as answers come)
  --users N            distinct users (default 10000)
  --token T            bearer token (default env LEDGER_TOKEN)
  --no-setup           skip giving every user a starting balance
)";

struct Options {
  ServerUrl server = ParseServerUrl("http://127.0.0.1:8080");
  std::string mode = "single";
  int batch = 1000;
  std::string results = "full";
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

// One command of the workload, as drawn: its user, and a top-up of 1000 or a
// usage of 1-10.
struct Draw {
  uint64_t user = 0;
  bool top_up = false;
  int64_t amount = 0;
};

Draw DrawCommand(std::mt19937_64& rng, const Options& o) {
  Draw d;
  d.user = rng() % static_cast<uint64_t>(o.users);
  d.top_up = rng() % 5 == 0;
  d.amount = d.top_up ? 1000 : 1 + static_cast<int64_t>(rng() % 10);
  return d;
}

void AppendNumber(std::string* out, uint64_t v) {
  char digits[20];
  auto end = std::to_chars(digits, digits + sizeof digits, v).ptr;
  out->append(digits, end);
}

// The workload's texts, one definition for both encodings: the user's id, a
// top-up's key (the n-th command of connection `run`: a fresh payment id),
// a usage's metadata (naming a graph execution).
void AppendUserId(std::string* out, const Draw& d) {
  *out += "user-";
  AppendNumber(out, d.user);
}
void AppendPaymentId(std::string* out, std::string_view run, uint64_t n) {
  *out += "pi-";
  *out += run;
  *out += '-';
  AppendNumber(out, n);
}
void AppendMetadata(std::string* out, uint64_t n) {
  *out += R"({"graph_exec_id":"g-)";
  AppendNumber(out, n);
  *out += R"(","node_id":"n-7"})";
}

// The command's JSON, written straight into `out`: through a Command and
// JsonWriter it took 0.13 us of the client's CPU per event in JSON batches
// against 0.08 (three alternating runs), CPU the server shares here. The
// texts need no escaping.
void AppendJson(std::string* out, const Draw& d, std::string_view run, uint64_t n) {
  *out += d.top_up ? R"({"type":"top_up","user_id":")" : R"({"type":"usage","user_id":")";
  AppendUserId(out, d);
  *out += R"(","amount":)";
  AppendNumber(out, static_cast<uint64_t>(d.amount));
  if (d.top_up) {
    *out += R"(,"key":")";
    AppendPaymentId(out, run, n);
    *out += '"';
  } else {
    *out += R"(,"metadata":)";
    AppendMetadata(out, n);
  }
  *out += '}';
}

// The same command for a Cap'n Proto batch, written over `c` (reused: its
// strings keep their room).
void SetCommand(ledger::Command* c, const Draw& d, std::string_view run, uint64_t n) {
  c->user_id.clear();
  AppendUserId(&c->user_id, d);
  c->kind = d.top_up ? ledger::Kind::kTopUp : ledger::Kind::kUsage;
  c->amount = d.amount;
  c->has_amount = true;
  c->key.clear();
  c->metadata.clear();
  c->has_metadata = !d.top_up;
  if (d.top_up) {
    AppendPaymentId(&c->key, run, n);
  } else {
    AppendMetadata(&c->metadata, n);
  }
}

// A JSON answer's results that succeeded: each result object begins
// {"ok":, found by its '{' (memchr for the rarer byte: scanning for '"'
// stopped every few bytes).
uint64_t CountOk(std::string_view body) {
  constexpr std::string_view kOk = R"({"ok":true)";
  uint64_t n = 0;
  const char* p = body.data();
  const char* end = body.data() + body.size();
  while (const void* hit = std::memchr(p, '{', static_cast<size_t>(end - p))) {
    p = static_cast<const char*>(hit);
    if (static_cast<size_t>(end - p) >= kOk.size() && std::memcmp(p, kOk.data(), kOk.size()) == 0)
      ++n;
    ++p;
  }
  return n;
}

// The HTTP/1.1 client is written on epoll directly, not Beast: on two
// shared cores every microsecond the load generator spends is taken from the
// server it measures (Beast and Asio cost ~30 us per request here; this loop
// a few). One loop per thread; each connection has one request in flight.
class Conn {
 public:
  Conn(const Options& o, int id, double interval_s)
      : o_(o),
        rng_(0x9e3779b97f4a7c15ULL * static_cast<uint64_t>(id + 1)),
        run_(RunId() + "-" + std::to_string(id)),
        interval_(interval_s) {
    head_ = std::string("POST /v1/events") + (o.results == "compact" ? "?results=compact" : "") +
            " HTTP/1.1\r\nHost: " + o.server.host + "\r\nContent-Type: " +
            (o.mode == "capnp-batch" ? "application/x-capnp" : "application/json") + "\r\n";
    if (!o.token.empty()) head_ += "Authorization: Bearer " + o.token + "\r\n";
    head_ += "Content-Length: ";
  }

  // Starts a non-blocking connect and registers with `epfd`; false (and says
  // why) when the socket cannot even be set up.
  bool Connect(const sockaddr_storage& addr, socklen_t len, int epfd) {
    fd_ = ::socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLET;
    ev.data.ptr = this;
    if (fd_ < 0 ||
        (addr.ss_family != AF_UNIX &&
         ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) ||
        (::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), len) != 0 &&
         errno != EINPROGRESS) ||
        ::epoll_ctl(epfd, EPOLL_CTL_ADD, fd_, &ev) != 0) {
      std::fprintf(stderr, "connect: %s\n", std::strerror(errno));
      return false;
    }
    return true;
  }

  // Builds the next request; false once the run is over. The buffers are
  // reused: on two shared cores the load generator's CPU is taken from the
  // server it measures.
  bool Next(Clock::time_point now, Clock::time_point end) {
    if (now >= end) return false;
    body_.clear();
    if (o_.mode == "single") {
      AppendJson(&body_, DrawCommand(rng_, o_), run_, n_++);
    } else if (o_.mode == "json-batch") {
      body_ += '[';
      for (int i = 0; i < o_.batch; ++i) {
        if (i > 0) body_ += ',';
        AppendJson(&body_, DrawCommand(rng_, o_), run_, n_++);
      }
      body_ += ']';
    } else {
      cmds_.resize(static_cast<size_t>(o_.batch));
      for (ledger::Command& c : cmds_) SetCommand(&c, DrawCommand(rng_, o_), run_, n_++);
      body_ = ledger::EncodeCommandBatch(cmds_);
    }
    out_ = head_;
    AppendNumber(&out_, body_.size());
    out_ += "\r\n\r\n";
    written_ = 0;
    in_.clear();
    return true;
  }

  // When the next request may go (paced runs), else now.
  Clock::time_point Due(Clock::time_point now) {
    if (interval_ <= 0) return now;
    if (next_send_ == Clock::time_point{}) next_send_ = now;
    Clock::time_point due = std::max(next_send_, now);
    next_send_ =
        due + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(interval_));
    return due;
  }

  void Send(Clock::time_point now) {
    sent_ = now;
    sending_ = true;
    Flush();
  }

  // Writes what the socket takes; the rest waits for EPOLLOUT.
  void Flush() {
    // The head and the body go out together from their own buffers (a
    // batch's body is ~150 KB: copied after the head, it was a quarter of
    // the load generator's CPU in Cap'n Proto batches).
    size_t total = out_.size() + body_.size();
    while (sending_ && written_ < total) {
      iovec parts[2];
      int count = 0;
      if (written_ < out_.size()) {
        parts[count++] = {out_.data() + written_, out_.size() - written_};
        parts[count++] = {body_.data(), body_.size()};
      } else {
        parts[count++] = {body_.data() + (written_ - out_.size()), total - written_};
      }
      msghdr msg{};
      msg.msg_iov = parts;
      msg.msg_iovlen = static_cast<size_t>(count);
      ssize_t n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
      if (n > 0) {
        written_ += static_cast<size_t>(n);
      } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        return;
      } else {
        return Fail(n < 0 ? std::strerror(errno) : "connection closed");
      }
    }
    sending_ = false;
  }

  // Reads what arrived; true when a whole response is in and counted.
  bool Receive() {
    char buf[65536];
    for (;;) {
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n > 0) {
        in_.append(buf, static_cast<size_t>(n));
        // A read short of the buffer took all there was: what arrives after
        // it is a new edge for epoll, so asking again would only get EAGAIN
        // (one wasted system call per response, measured).
        if (static_cast<size_t>(n) < sizeof buf) break;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) break;
      Fail(n < 0 ? std::strerror(errno) : "server closed the connection");
      return false;
    }
    size_t header_end = in_.find("\r\n\r\n");
    if (header_end == std::string::npos) return false;
    if (content_length_ < 0) {
      content_length_ = ledger::ContentLength(std::string_view(in_).substr(0, header_end));
      if (content_length_ < 0) {
        Fail("response without Content-Length");
        return false;
      }
    }
    size_t total = header_end + 4 + static_cast<size_t>(content_length_);
    if (in_.size() < total) return false;
    unsigned status = in_.size() > 12 ? static_cast<unsigned>(std::atoi(in_.c_str() + 9)) : 0;
    Count(status, std::string_view(in_).substr(header_end + 4, content_length_));
    content_length_ = -1;
    return true;
  }

  void Report(Totals& totals) {
    std::lock_guard<std::mutex> lock(totals.mu);
    totals.latencies_us.insert(totals.latencies_us.end(), latencies_.begin(), latencies_.end());
    totals.requests += requests_;
    totals.events_ok += ok_;
    totals.events_rejected += rejected_;
    totals.http_errors += http_errors_;
  }

  bool failed() const { return failed_; }
  bool waiting_to_write() const { return sending_; }
  Clock::time_point sent() const { return sent_; }

  ~Conn() {
    if (fd_ >= 0) ::close(fd_);
  }

 private:
  void Count(unsigned status, std::string_view body) {
    latencies_.push_back(std::chrono::duration<double, std::micro>(Clock::now() - sent_).count());
    ++requests_;
    if (o_.mode == "capnp-batch" && status == 200) {
      size_t ok = 0, rejected = 0;
      ledger::CountResults(body, &ok, &rejected);
      ok_ += ok;
      rejected_ += rejected;
    } else if (status == 200 || status == 422 || status == 409 || status == 404) {
      // Count results by their "ok" flags (one for single, many for a batch).
      uint64_t oks = CountOk(body);
      ok_ += oks;
      uint64_t sent = o_.mode == "single" ? 1 : static_cast<uint64_t>(o_.batch);
      rejected_ += sent - std::min(oks, sent);
    } else {
      ++http_errors_;
    }
  }

  void Fail(const char* why) {
    if (failed_) return;
    // One line for the run, not one per connection (the count is in the
    // summary's "http errors").
    static std::atomic<bool> reported{false};
    if (!reported.exchange(true)) std::fprintf(stderr, "request failed: %s\n", why);
    ++http_errors_;
    failed_ = true;
    sending_ = false;
  }

  const Options& o_;
  int fd_ = -1;
  std::mt19937_64 rng_;
  std::string run_;
  double interval_;
  std::string head_;  // request line and headers up to the Content-Length value
  std::string body_;
  std::vector<ledger::Command> cmds_;  // a Cap'n Proto batch's, reused
  std::string out_;                    // the request's head (its body is body_)
  size_t written_ = 0;                 // of the head and then the body
  bool sending_ = false;
  std::string in_;
  long content_length_ = -1;
  Clock::time_point next_send_{};
  Clock::time_point sent_;
  uint64_t n_ = 0;
  std::vector<double> latencies_;
  uint64_t requests_ = 0, ok_ = 0, rejected_ = 0, http_errors_ = 0;
  bool failed_ = false;
};

// One thread's share of the connections, driven to `end`.
void RunLoop(const Options& o, const sockaddr_storage& addr, socklen_t len, int first, int count,
             double interval, Clock::time_point end, Totals& totals) {
  int epfd = ::epoll_create1(EPOLL_CLOEXEC);
  std::vector<std::unique_ptr<Conn>> conns;
  // Paced connections wait here for their next send time.
  using Timed = std::pair<Clock::time_point, Conn*>;
  std::priority_queue<Timed, std::vector<Timed>, std::greater<>> timers;
  int active = 0;
  for (int i = 0; i < count; ++i) {
    auto c = std::make_unique<Conn>(o, first + i, interval);
    if (!c->Connect(addr, len, epfd)) std::exit(1);  // (Connect said why)
    auto now = Clock::now();
    if (c->Next(now, end)) {
      timers.emplace(c->Due(now), c.get());
      ++active;
    }
    conns.push_back(std::move(c));
  }
  std::vector<epoll_event> events(256);
  while (active > 0) {
    auto now = Clock::now();
    while (!timers.empty() && timers.top().first <= now) {
      Conn* c = timers.top().second;
      timers.pop();
      if (c->failed()) continue;  // closed while it waited (counted then)
      c->Send(now);
      if (c->failed()) --active;
    }
    int timeout = -1;
    if (!timers.empty()) {
      auto wait = std::chrono::ceil<std::chrono::milliseconds>(timers.top().first - now).count();
      timeout = static_cast<int>(std::max<long>(0, wait));
    }
    if (now >= end + std::chrono::seconds(30)) break;  // answers that never come
    int n = ::epoll_wait(epfd, events.data(), static_cast<int>(events.size()),
                         timeout < 0 ? 1000 : timeout);
    if (n < 0 && errno != EINTR) break;
    now = Clock::now();
    for (int i = 0; i < n; ++i) {
      Conn* c = static_cast<Conn*>(events[i].data.ptr);
      if (c->failed()) continue;
      if (events[i].events & EPOLLOUT) c->Flush();
      if (!c->failed() && !c->waiting_to_write() && c->sent() != Clock::time_point{} &&
          (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
        if (c->Receive()) {
          if (c->Next(now, end)) {
            Clock::time_point due = c->Due(now);
            if (due <= now) {
              c->Send(now);
            } else {
              timers.emplace(due, c);
            }
          } else {
            --active;
          }
        }
      }
      if (c->failed()) --active;
    }
  }
  for (auto& c : conns) c->Report(totals);
  ::close(epfd);
}

// Gives every user a starting balance (JSON batches of 1000 grants).
void Setup(const Options& o, const sockaddr_storage& addr, socklen_t len) {
  net::io_context ioc;
  net::generic::stream_protocol::socket stream(ioc);
  stream.connect(net::generic::stream_protocol::endpoint(&addr, len));
  beast::flat_buffer buf;
  for (int start = 0; start < o.users; start += 1000) {
    std::string body = "[";
    for (int u = start; u < std::min(o.users, start + 1000); ++u) {
      body += std::string(u == start ? "" : ",") + R"({"type":"grant","user_id":"user-)" +
              std::to_string(u) + R"(","amount":1000000000,"key":"loadgen-start"})";
    }
    body += "]";
    http::request<http::string_body> req{http::verb::post, "/v1/events", 11};
    req.set(http::field::host, o.server.host);
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
  ledger::KeepFreedMemory();  // before any thread starts
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
      o.server = ParseServerUrl(next());
    } else if (f == "--mode") {
      o.mode = next();
    } else if (f == "--batch") {
      o.batch = std::atoi(next().c_str());
    } else if (f == "--results") {
      o.results = next();
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
  if (o.results != "full" && (o.results != "compact" || o.mode != "capnp-batch")) {
    std::fprintf(stderr, "--results is full, or compact with --mode capnp-batch\n");
    return 2;
  }
  if (o.batch < 1 || o.batch > 8192 || o.connections < 1 || o.users < 1 || o.threads < 1) {
    std::fprintf(stderr, "--batch 1..8192, --connections, --users and --threads at least 1\n");
    return 2;
  }
  // The server's first address, as the raw sockets below take it.
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
  try {
    auto endpoints = ServerEndpoints(o.server);
    if (endpoints.empty()) throw std::runtime_error("no address");
    addr_len = static_cast<socklen_t>(endpoints.front().size());
    std::memcpy(&addr, endpoints.front().data(), addr_len);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "--url: %s\n", e.what());
    return 2;
  }
  if (o.setup) {
    // A server that is not there (or goes away) is the user's to fix: say
    // so, not an uncaught exception.
    try {
      Setup(o, addr, addr_len);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "setup: %s\n", e.what());
      return 1;
    }
  }
  rusage before{};
  ::getrusage(RUSAGE_SELF, &before);  // the run's own CPU, without the setup's
  Totals totals;
  auto start = Clock::now();
  auto end =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.seconds));
  double interval = o.rate > 0 ? o.connections / o.rate : 0;
  int threads_n = std::min(o.threads, o.connections);
  std::vector<std::thread> threads;
  for (int t = 0, first = 0; t < threads_n; ++t) {
    int count = o.connections / threads_n + (t < o.connections % threads_n ? 1 : 0);
    threads.emplace_back(
        [&, first, count] { RunLoop(o, addr, addr_len, first, count, interval, end, totals); });
    first += count;
  }
  for (auto& t : threads) t.join();
  double secs = std::chrono::duration<double>(Clock::now() - start).count();
  rusage after{};
  ::getrusage(RUSAGE_SELF, &after);

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
  // What this client took of the machine: on the server's own cores, it is
  // CPU the server measured did not have.
  auto secs_of = [](const timeval& a, const timeval& b) {
    return static_cast<double>(b.tv_sec - a.tv_sec) +
           static_cast<double>(b.tv_usec - a.tv_usec) / 1e6;
  };
  double user = secs_of(before.ru_utime, after.ru_utime);
  double sys = secs_of(before.ru_stime, after.ru_stime);
  uint64_t answered = totals.events_ok + totals.events_rejected;
  std::printf("client cpu %.2f us per event (user %.2f s, system %.2f s)\n",
              answered > 0 ? (user + sys) * 1e6 / static_cast<double>(answered) : 0.0, user, sys);
  return totals.http_errors == 0 ? 0 : 1;
}
