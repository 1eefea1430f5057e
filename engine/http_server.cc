#include "engine/http_server.h"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <pthread.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <optional>
#include <thread>

#include "engine/capnp_batch.h"
#include "engine/export.h"
#include "engine/json_command.h"
#include "engine/json_writer.h"
#include "engine/text.h"
#include "engine/time_format.h"
#include "engine/wal_pool.h"

namespace ledger {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
// Connections come over TCP or a Unix-domain socket (`--listen unix:PATH`):
// one generic stream protocol serves both, with the same system calls.
using Stream = net::generic::stream_protocol;
// A connection's socket, bound to its I/O thread's io_context by type: every
// read, write and post then goes to the io_context directly, not through
// any_io_executor's type-erased calls (its execute, copy, destroy and prefer
// were a fifth of the HTTP threads' own frames per request).
using Socket = net::basic_stream_socket<Stream, net::io_context::executor_type>;

// What the server reads of a request (RequestParser fills it).
struct Request {
  http::verb method = http::verb::unknown;
  std::string method_text;  // as sent, for the access log
  std::string target;
  unsigned version = 11;
  std::string content_type;   // the first Content-Type field
  std::string authorization;  // the first Authorization field
  std::string body;
};

// Beast's HTTP/1 parser (the grammar, the limits, Content-Length and chunked
// bodies, keep-alive) keeping only what a Request holds. Beast's
// request_parser stores every field in a node-based container (an
// allocation and a tree insert each, ~1,000 instructions a request for
// Host, Content-Length and the like, which nothing here reads).
class RequestParser final : public http::basic_parser<true> {
 public:
  Request& request() { return request_; }
  // Whether the client asked to be told to send its body ("Expect:
  // 100-continue", RFC 9110 10.1.1; curl does for bodies over 1 MB, and
  // would otherwise wait a second before sending it) and has not been told
  // yet: true once per request.
  bool ClaimContinue() { return std::exchange(expects_continue_, false); }

 private:
  void on_request_impl(http::verb method, beast::string_view method_text, beast::string_view target,
                       int version, beast::error_code&) override {
    request_.method = method;
    request_.method_text.assign(method_text.data(), method_text.size());
    request_.target.assign(target.data(), target.size());
    request_.version = static_cast<unsigned>(version);
  }
  void on_response_impl(int, beast::string_view, int, beast::error_code&) override {}
  void on_field_impl(http::field name, beast::string_view, beast::string_view value,
                     beast::error_code&) override {
    if (name == http::field::content_type && !has_content_type_) {
      has_content_type_ = true;
      request_.content_type.assign(value.data(), value.size());
    } else if (name == http::field::authorization && !has_authorization_) {
      has_authorization_ = true;
      request_.authorization.assign(value.data(), value.size());
    } else if (name == http::field::expect) {
      expects_continue_ = beast::iequals(value, "100-continue");
    }
  }
  void on_header_impl(beast::error_code&) override {}
  void on_body_init_impl(const boost::optional<std::uint64_t>& length,
                         beast::error_code&) override {
    // (The parser has checked the length against its body limit.)
    if (length) request_.body.reserve(static_cast<size_t>(*length));
  }
  size_t on_body_impl(beast::string_view piece, beast::error_code&) override {
    request_.body.append(piece.data(), piece.size());
    return piece.size();
  }
  void on_chunk_header_impl(std::uint64_t, beast::string_view, beast::error_code&) override {}
  size_t on_chunk_body_impl(std::uint64_t, beast::string_view piece, beast::error_code&) override {
    request_.body.append(piece.data(), piece.size());
    return piece.size();
  }
  void on_finish_impl(beast::error_code&) override {}

  Request request_;
  bool has_content_type_ = false;
  bool has_authorization_ = false;
  bool expects_continue_ = false;
};

// A response before serialisation: status, body, content type.
struct Reply {
  unsigned status = 200;
  std::string body;
  const char* content_type = "application/json";
};

namespace {

// Bytes asked of the socket per read, at most (as Beast's own read): a
// single command arrives in one read, a batch in a few, and the buffer of an
// idle keep-alive connection stays small.
constexpr size_t kReadBytesMax = 64 << 10;
// A connection's read buffer past this, empty between requests, is freed.
constexpr size_t kIdleBufferBytesMax = 4 << 10;

// Threads for the reads that go through the log or every user (see
// HttpServer::Impl::reads): two, so one long export does not hold up every
// history page behind it.
constexpr int kReadThreads = 2;

enum Route {
  kEvents,
  kBalance,
  kTransactions,
  kRefundRequests,
  kDisputes,
  kStats,
  kHealth,
  kMetrics,
  kOther,
  kRouteCount
};
constexpr const char* kRouteNames[kRouteCount] = {"events",          "balance",  "transactions",
                                                  "refund_requests", "disputes", "stats",
                                                  "healthz",         "metrics",  "other"};

struct RouteStats {
  Histogram latency{0.0001, 2};
  std::array<std::atomic<uint64_t>, 6> by_status_class{};  // index = status / 100
};

std::string ErrorJson(ErrorCode code, std::string_view message, std::string_view field = {}) {
  std::string out;
  AppendOutcomeJson(Outcome::Error(code, std::string(message), std::string(field)), &out);
  return out;
}

std::string PercentDecode(std::string_view s, bool* ok) {
  std::string out;
  out.reserve(s.size());
  *ok = true;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%') {
      auto hex = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
      };
      int hi = i + 2 < s.size() ? hex(s[i + 1]) : -1;
      int lo = i + 2 < s.size() ? hex(s[i + 2]) : -1;
      if (hi < 0 || lo < 0) {
        *ok = false;
        return out;
      }
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (s[i] == '+') {
      out.push_back(' ');
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// Constant-time comparison of a presented token with the configured one.
bool TokenMatches(std::string_view presented, std::string_view expected) {
  size_t n = std::max(presented.size(), expected.size());
  unsigned diff = presented.size() == expected.size() ? 0u : 1u;
  for (size_t i = 0; i < n; ++i) {
    unsigned char a = i < presented.size() ? static_cast<unsigned char>(presented[i]) : 0;
    unsigned char b = i < expected.size() ? static_cast<unsigned char>(expected[i]) : 0;
    diff |= a ^ b;
  }
  return diff == 0;
}

struct Query {
  std::vector<std::pair<std::string, std::string>> params;
  bool ok = true;
  const std::string* Get(std::string_view name) const {
    for (const auto& [k, v] : params) {
      if (k == name) return &v;
    }
    return nullptr;
  }
};

Query ParseQuery(std::string_view q) {
  Query out;
  while (!q.empty()) {
    size_t amp = q.find('&');
    std::string_view part = q.substr(0, amp);
    q = amp == std::string_view::npos ? std::string_view() : q.substr(amp + 1);
    if (part.empty()) continue;
    size_t eq = part.find('=');
    bool ok1 = true, ok2 = true;
    std::string k = PercentDecode(part.substr(0, eq), &ok1);
    std::string v =
        eq == std::string_view::npos ? std::string() : PercentDecode(part.substr(eq + 1), &ok2);
    out.ok = out.ok && ok1 && ok2;
    out.params.emplace_back(std::move(k), std::move(v));
  }
  return out;
}

// The writer's outcomes (of the valid commands, in order) with the
// rejections of the invalid ones put back at their places in the request.
std::vector<Outcome> MergeOutcomes(std::vector<Outcome> valid,
                                   std::vector<std::pair<size_t, Outcome>> invalid) {
  if (invalid.empty()) return valid;
  std::vector<Outcome> all;
  all.reserve(valid.size() + invalid.size());
  size_t next_valid = 0;
  for (auto& [index, outcome] : invalid) {
    while (all.size() < index) all.push_back(std::move(valid[next_valid++]));
    all.push_back(std::move(outcome));
  }
  while (next_valid < valid.size()) all.push_back(std::move(valid[next_valid++]));
  return all;
}

// The TCP endpoint a generic one holds (its family AF_INET or AF_INET6).
tcp::endpoint AsTcp(const Stream::endpoint& ep) {
  tcp::endpoint out;
  std::memcpy(out.data(), ep.data(), std::min<size_t>(ep.size(), out.capacity()));
  return out;
}

// Before binding `path`: a socket file whose server is gone (killed, so it
// never removed it) is removed; a live server's, or any other file, is an
// error.
Status ClearStaleSocket(const std::string& path) {
  if (path.size() >= sizeof(sockaddr_un::sun_path)) {
    return Status::Error("the socket path " + path + " is longer than " +
                         std::to_string(sizeof(sockaddr_un::sun_path) - 1) + " bytes");
  }
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return Status::Ok();  // nothing there
  if (!S_ISSOCK(st.st_mode)) {
    return Status::Error("cannot listen on unix:" + path +
                         ": a file that is not a socket is there");
  }
  // A live server accepts the probe, or (its backlog full) would make it
  // wait: non-blocking, that is EAGAIN. Only a refusal means no one listens.
  net::io_context probe_ctx;
  net::local::stream_protocol::socket probe(probe_ctx);
  boost::system::error_code ec;
  probe.open(net::local::stream_protocol(), ec);
  if (!ec) probe.non_blocking(true, ec);
  if (!ec) probe.connect(net::local::stream_protocol::endpoint(path), ec);
  if (!ec || ec == net::error::would_block || ec == net::error::try_again) {
    return Status::Error("cannot listen on unix:" + path + ": a server is listening there");
  }
  if (ec != net::error::connection_refused &&
      ec != boost::system::errc::no_such_file_or_directory) {
    return Status::Error("cannot listen on unix:" + path + ": " + ec.message());
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return Status::Error("cannot remove the stale socket " + path + ": " + std::strerror(errno));
  }
  return Status::Ok();
}

}  // namespace

bool IsLoopbackHost(const std::string& host) {
  if (host == "localhost") return true;
  boost::system::error_code ec;
  auto addr = net::ip::make_address(host, ec);
  return !ec && addr.is_loopback();
}

class Session;

struct HttpServer::Impl {
  Ledger* ledger;
  ServerOptions options;
  // One io_context per I/O thread, each run by that thread alone: a
  // connection lives on one of them, so its handlers never run concurrently
  // and need no strand. The writer posts responses to the connection's.
  struct IoThread {
    net::io_context ioc{1};
    // Keeps the thread running while requests wait on the writer with no
    // Asio operation pending (after the acceptor closes, during a drain).
    std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
    // Closes connections past their request deadline (one timer per thread,
    // not one per read).
    std::optional<net::steady_timer> sweep;
    std::mutex mu;  // sessions: added by the acceptor's thread
    std::vector<std::weak_ptr<Session>> sessions;
    // Its open connections. With more than one, the thread never writes and
    // syncs a command itself (Ledger::Submit's caller_free): the requests
    // of its other connections would wait unread behind the fdatasync.
    // (With one thread and 64 connections they did: 10,000 commands/s
    // instead of 75,000.)
    std::atomic<size_t> connections{0};
    // Reads of its sockets (each a recv) and the bytes they took: how large
    // the reads are (/metrics).
    std::atomic<uint64_t> reads{0};
    std::atomic<uint64_t> received_bytes{0};
  };
  std::vector<std::unique_ptr<IoThread>> io;
  size_t next_io = 0;
  std::optional<net::basic_socket_acceptor<Stream>> acceptor;
  std::vector<std::thread> threads;
  uint16_t bound_port = 0;
  std::string bound_socket;  // the Unix-domain socket's path, removed by Stop
  std::atomic<size_t> in_flight{0};
  std::atomic<bool> stopping{false};
  std::array<RouteStats, kRouteCount> routes;
  std::mutex log_mu;
  // Reads whose cost grows with the data (histories, the log at a point in
  // time, exports) run here, not on an I/O thread: a filtered history of a
  // user with 400,000 events takes 0.45 s, and the I/O thread's other
  // connections would wait that long. Their answers are posted back to the
  // connection's thread like the writer's. (Declared last: what is left
  // queued here at the end is destroyed before what it refers to.)
  net::io_context reads{kReadThreads};
  std::optional<net::executor_work_guard<net::io_context::executor_type>> reads_work;
  std::vector<std::thread> read_threads;

  Impl(Ledger* l, ServerOptions o) : ledger(l), options(std::move(o)) {
    for (int i = 0; i < std::max(1, options.io_threads); ++i)
      io.push_back(std::make_unique<IoThread>());
  }

  void Accept();
  void Sweep(IoThread* thread);
  // Open connections, all threads'.
  size_t Connections() const {
    size_t n = 0;
    for (const auto& thread : io) n += thread->connections.load(std::memory_order_relaxed);
    return n;
  }
  // Sum over the I/O threads of one of their counters.
  uint64_t IoTotal(std::atomic<uint64_t> IoThread::*counter) const {
    uint64_t n = 0;
    for (const auto& thread : io) n += ((*thread).*counter).load(std::memory_order_relaxed);
    return n;
  }
  // Runs `fn` on a read thread.
  template <typename Fn>
  void OffIoThread(Fn fn) {
    net::post(reads, std::move(fn));
  }
  // Answers `route` on a read thread: 200 with the body `read(&body)`
  // fills, or 500 with the error it returns.
  template <typename Read>
  void AnswerOffIoThread(const std::shared_ptr<Session>& session, Route route, Read read);
  void Handle(Request& req, const std::shared_ptr<Session>& session);
  void HandleEvents(Request& req, const Query& query, const std::shared_ptr<Session>& session);
  void HandleUser(const std::string& user, std::string_view what, const Query& query,
                  const std::shared_ptr<Session>& session);
  std::string MetricsText();
  void LogAccess(const std::string& remote, const Request& req, unsigned status, size_t bytes,
                 double seconds);
};

// One connection: reads requests one after another (keep-alive), hands each
// to the router, writes its response when it is ready (possibly from another
// thread: responses are posted to the connection's io_context). Beast parses
// requests; responses are written as two buffers, head and body.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Socket socket, HttpServer::Impl* server, HttpServer::Impl::IoThread* thread)
      : socket_(std::move(socket)), server_(server), thread_(thread) {
    thread_->connections.fetch_add(1, std::memory_order_relaxed);
    boost::system::error_code ec;
    auto ep = socket_.remote_endpoint(ec);
    if (ec) {
      remote_ = "?";
    } else if (ep.protocol().family() == AF_UNIX) {
      remote_ = "unix";  // its peers have no address
    } else {
      tcp::endpoint peer = AsTcp(ep);
      remote_ = peer.address().to_string() + ":" + std::to_string(peer.port());
      socket_.set_option(tcp::no_delay(true), ec);
    }
  }
  ~Session() { thread_->connections.fetch_sub(1, std::memory_order_relaxed); }

  // On the connection's thread: whether it serves this connection alone.
  bool AloneOnThread() const { return thread_->connections.load(std::memory_order_relaxed) == 1; }

  void Start() {
    {
      std::lock_guard<std::mutex> lock(thread_->mu);
      thread_->sessions.push_back(weak_from_this());
    }
    net::dispatch(socket_.get_executor(),
                  beast::bind_front_handler(&Session::DoRead, shared_from_this()));
  }

  // Thread-safe: sends `reply` for the current request (at once on the
  // connection's own thread, else posted to it).
  void Respond(Route route, Reply reply) {
    net::dispatch(socket_.get_executor(),
                  [self = shared_from_this(), route, reply = std::move(reply)]() mutable {
                    self->DoWrite(route, std::move(reply));
                  });
  }

  // Thread-safe: runs `fn` on the connection's thread.
  template <typename Fn>
  void Post(Fn fn) {
    net::post(socket_.get_executor(), std::move(fn));
  }

  void RespondJson(Route route, unsigned status, std::string body) {
    Respond(route, Reply{status, std::move(body)});
  }

  const std::string& remote() const { return remote_; }

  // On the connection's thread (the sweep): closes it if a request is being
  // read past its deadline.
  void ExpireIfLate(std::chrono::steady_clock::time_point now) {
    if (reading_ && now >= deadline_) {
      boost::system::error_code ec;
      socket_.close(ec);  // the pending read ends with operation_aborted
    }
  }

 private:
  void DoRead() {
    // A body's large reads leave a large buffer; between requests, with
    // nothing in it, it is let go, so an idle connection holds little.
    if (buffer_.size() == 0 && buffer_.capacity() > kIdleBufferBytesMax) buffer_.shrink_to_fit();
    parser_.emplace();
    parser_->header_limit(kHeaderBytesMax);
    parser_->body_limit(kBodyBytesMax);
    parser_->eager(true);  // the header and what follows of the body in one put
    deadline_ = std::chrono::steady_clock::now() + server_->options.request_timeout;
    reading_ = true;
    Parse();
  }

  // Reads one request as http::async_read does, without its layers of
  // composed operations: the parser takes what the buffer holds (a
  // pipelined request may be there already), and the socket is read while
  // the parser needs more. What follows the request stays in the buffer.
  void Parse() {
    while (!parser_->is_done()) {
      if (buffer_.size() == 0) return ReadMore();
      beast::error_code ec;
      size_t used = parser_->put(buffer_.data(), ec);
      buffer_.consume(used);
      if (ec && ec != http::error::need_more) return OnRead(ec);
      if (ShouldSendContinue()) return SendContinue();
      if (ec) return ReadMore();
    }
    OnRead({});
  }

  // Whether the client waits for "100 Continue" before sending the body it
  // announced: HTTP/1.1 only, and only while none of the body is here yet (a
  // client that sent it anyway needs no invitation; the parser takes what
  // the buffer holds, so the body read so far is where to look). Claimed
  // the first time the header is found read: at most once per request.
  bool ShouldSendContinue() {
    return parser_->is_header_done() && !parser_->is_done() && parser_->ClaimContinue() &&
           parser_->request().version >= 11 && parser_->request().body.empty();
  }

  void SendContinue() {
    static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    net::async_write(socket_, net::buffer(kContinue.data(), kContinue.size()),
                     [self = shared_from_this()](beast::error_code ec, size_t) {
                       if (ec) return self->OnRead(ec);
                       self->Parse();
                     });
  }

  void ReadMore() {
    socket_.async_read_some(buffer_.prepare(ReadSize()),
                            beast::bind_front_handler(&Session::OnReadSome, shared_from_this()));
  }

  // Bytes to ask of the socket: for a body of known length, all that is
  // left of it, up to kReadBytesMax; else what the buffer has room for (at
  // least 512 bytes, as Beast's own reads). Beast's read_size alone never
  // grows the buffer past its capacity, and a buffer that each request
  // empties stays at its first 512 bytes: a batch of 1,000 events was read
  // 512 bytes a time, a recv and an epoll_wait each (measured: 12,010 of
  // 12,050 reads were of exactly 512 bytes). Headers and single commands
  // keep the small buffer.
  size_t ReadSize() const {
    size_t room = beast::read_size(buffer_, kReadBytesMax);
    if (!parser_->is_header_done()) return room;
    auto left = parser_->content_length_remaining();  // boost::optional
    if (!left) return room;
    return std::max(room, static_cast<size_t>(std::min<uint64_t>(*left, kReadBytesMax)));
  }

  void OnReadSome(beast::error_code ec, size_t bytes) {
    thread_->reads.fetch_add(1, std::memory_order_relaxed);
    thread_->received_bytes.fetch_add(bytes, std::memory_order_relaxed);
    buffer_.commit(bytes);
    if (ec == net::error::eof) {
      // The client is done sending: a request cut short is malformed;
      // between requests it is the end of the connection.
      if (!parser_->got_some()) return OnRead(http::error::end_of_stream);
      parser_->put_eof(ec);
    }
    if (ec) return OnRead(ec);
    Parse();
  }

  void OnRead(beast::error_code ec) {
    reading_ = false;  // the response may wait on the writer; no read pending
    if (ec == http::error::end_of_stream || ec == net::error::operation_aborted ||
        ec == net::error::connection_reset || ec == net::error::bad_descriptor) {
      return Close();
    }
    if (ec) {
      // The request cannot be read any further: answer, then close.
      keep_alive_ = false;
      version_ = 11;
      started_ = std::chrono::steady_clock::now();
      request_ = Request{};
      if (ec == http::error::body_limit) {
        return DoWrite(kOther, Reply{413, ErrorJson(ErrorCode::kPayloadTooLarge,
                                                    "request body is over 16 MiB")});
      }
      if (ec == http::error::header_limit) {
        return DoWrite(kOther, Reply{431, ErrorJson(ErrorCode::kInvalidRequest,
                                                    "request headers are over 16 KiB")});
      }
      return DoWrite(kOther, Reply{400, ErrorJson(ErrorCode::kInvalidRequest,
                                                  "malformed HTTP request: " + ec.message())});
    }
    // The parser noted the Connection tokens while parsing; asking the
    // message would look the header up again.
    keep_alive_ = parser_->keep_alive();
    request_ = std::move(parser_->request());
    version_ = request_.version;
    started_ = std::chrono::steady_clock::now();
    server_->in_flight.fetch_add(1);
    counted_ = true;
    if (server_->stopping.load()) {
      keep_alive_ = false;
      return DoWrite(kOther,
                     Reply{503, ErrorJson(ErrorCode::kOverloaded, "the server is shutting down")});
    }
    server_->Handle(request_, shared_from_this());
  }

  void DoWrite(Route route, Reply reply) {
    double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
    server_->routes[route].latency.Observe(secs);
    server_->routes[route].by_status_class[std::min(reply.status / 100, 5u)].fetch_add(1);
    if (server_->options.access_log) {
      server_->LogAccess(remote_, request_, reply.status, reply.body.size(), secs);
    }
    bool close = !keep_alive_ || server_->stopping.load();
    body_ = std::move(reply.body);
    head_.clear();
    head_ += version_ == 10 ? "HTTP/1.0 " : "HTTP/1.1 ";
    head_ += std::to_string(reply.status);
    head_ += ' ';
    auto reason = http::obsolete_reason(static_cast<http::status>(reply.status));
    head_.append(reason.data(), reason.size());
    head_ += "\r\nServer: ledgerd\r\nContent-Type: ";
    head_ += reply.content_type;
    head_ += "\r\nContent-Length: ";
    head_ += std::to_string(body_.size());
    if (close) {
      head_ += "\r\nConnection: close";
    } else if (version_ == 10) {
      head_ += "\r\nConnection: keep-alive";
    }
    head_ += "\r\n\r\n";
    // A HEAD request gets the head a GET would (its Content-Length too) and
    // no body: a body would be read as the start of the next response.
    bool head_only = request_.method == http::verb::head;
    std::array<net::const_buffer, 2> buffers{
        net::buffer(head_), net::buffer(body_.data(), head_only ? 0 : body_.size())};
    net::async_write(socket_, buffers,
                     beast::bind_front_handler(&Session::OnWrite, shared_from_this(), close));
  }

  void OnWrite(bool close, beast::error_code ec, size_t) {
    body_.clear();
    if (counted_) {
      counted_ = false;
      server_->in_flight.fetch_sub(1);
    }
    if (ec || close) return Close();
    DoRead();
  }

  void Close() {
    beast::error_code ec;
    socket_.shutdown(Socket::shutdown_send, ec);
  }

  Socket socket_;
  HttpServer::Impl* server_;
  HttpServer::Impl::IoThread* thread_;
  beast::flat_buffer buffer_;
  std::optional<RequestParser> parser_;
  Request request_;
  std::string head_;
  std::string body_;
  std::string remote_;
  bool keep_alive_ = true;
  unsigned version_ = 11;
  bool counted_ = false;
  bool reading_ = false;
  std::chrono::steady_clock::time_point deadline_;
  std::chrono::steady_clock::time_point started_;
};

void HttpServer::Impl::Accept() {
  IoThread* thread = io[next_io++ % io.size()].get();
  auto socket = std::make_unique<Socket>(thread->ioc);
  Socket& peer = *socket;
  acceptor->async_accept(peer, [this, thread, socket = std::move(socket)](beast::error_code ec) {
    if (ec) {
      if (ec == net::error::operation_aborted || stopping.load()) return;
    } else if (Connections() >= kConnectionsMax) {
      beast::error_code ignored;
      socket->close(ignored);  // over the limit: refuse rather than queue
    } else {
      std::make_shared<Session>(std::move(*socket), this, thread)->Start();
    }
    if (!stopping.load()) Accept();
  });
}

void HttpServer::Impl::Sweep(IoThread* thread) {
  thread->sweep->expires_after(std::chrono::milliseconds(250));
  thread->sweep->async_wait([this, thread](beast::error_code ec) {
    if (ec) return;  // cancelled: stopping
    auto now = std::chrono::steady_clock::now();
    std::vector<std::shared_ptr<Session>> live;
    {
      std::lock_guard<std::mutex> lock(thread->mu);
      auto& all = thread->sessions;
      for (size_t i = 0; i < all.size();) {
        if (auto session = all[i].lock()) {
          live.push_back(std::move(session));
          ++i;
        } else {
          all[i] = std::move(all.back());
          all.pop_back();
        }
      }
    }
    for (auto& session : live) session->ExpireIfLate(now);
    live.clear();  // (a last reference may end a session here, outside the lock)
    Sweep(thread);
  });
}

void HttpServer::Impl::LogAccess(const std::string& remote, const Request& req, unsigned status,
                                 size_t bytes, double seconds) {
  std::string line;
  AppendTime(SystemClockUs(), &line);
  line += " " + remote + " \"";
  line.append(req.method_text);
  line += " ";
  std::string_view target(req.target.data(), std::min<size_t>(req.target.size(), 200));
  line.append(target);
  char tail[96];
  std::snprintf(tail, sizeof tail, "\" %u %zu %.3fms\n", status, bytes, seconds * 1e3);
  line += tail;
  std::lock_guard<std::mutex> lock(log_mu);
  std::fwrite(line.data(), 1, line.size(), stdout);
}

void HttpServer::Impl::Handle(Request& req, const std::shared_ptr<Session>& session) {
  std::string_view target(req.target);
  size_t qpos = target.find('?');
  std::string_view path = target.substr(0, qpos);
  Query query = ParseQuery(qpos == std::string_view::npos ? "" : target.substr(qpos + 1));
  // HEAD reads what GET does (Session::DoWrite leaves the body out).
  bool get = req.method == http::verb::get || req.method == http::verb::head;

  if (path == "/healthz") {
    return session->RespondJson(kHealth, 200, "{\"ok\":true}");
  }
  if (path == "/metrics") {
    return session->Respond(kMetrics, Reply{200, MetricsText(), "text/plain; version=0.0.4"});
  }
  if (path.substr(0, 4) != "/v1/") {
    return session->RespondJson(kOther, 404, ErrorJson(ErrorCode::kNotFound, "no such endpoint"));
  }
  if (!options.token.empty()) {
    std::string_view auth = req.authorization;
    constexpr std::string_view kBearer = "Bearer ";
    if (auth.substr(0, kBearer.size()) != kBearer ||
        !TokenMatches(auth.substr(kBearer.size()), options.token)) {
      return session->RespondJson(
          kOther, 401, ErrorJson(ErrorCode::kUnauthorized, "missing or wrong bearer token"));
    }
  }
  if (!query.ok) {
    return session->RespondJson(kOther, 400,
                                ErrorJson(ErrorCode::kInvalidRequest, "malformed query string"));
  }
  if (path == "/v1/events") {
    if (req.method != http::verb::post) {
      return session->RespondJson(kEvents, 405,
                                  ErrorJson(ErrorCode::kInvalidRequest, "use POST /v1/events"));
    }
    return HandleEvents(req, query, session);
  }
  if (path == "/v1/stats" && get) {
    LedgerStats s = ledger->Stats();
    return session->RespondJson(
        kStats, 200, StatsJson(s.events, s.users, s.last_seq, s.last_snapshot_seq, s.state_hash));
  }
  if ((path == "/v1/top" || path == "/v1/export") && get) {
    if (path == "/v1/top") {
      size_t limit = 10;
      if (const std::string* v = query.Get("limit")) {
        auto n = ParseDecimal(*v);
        if (!n || *n < 1 || *n > 1000) {
          return session->RespondJson(
              kOther, 400, ErrorJson(ErrorCode::kInvalidRequest, "limit is 1 to 1000", "limit"));
        }
        limit = static_cast<size_t>(*n);
      }
      return AnswerOffIoThread(session, kOther, [this, limit](std::string* body) {
        *body = ledger->WithProjection([&](const Projection& p) { return TopUsersJson(p, limit); });
        return Status::Ok();
      });
    }
    const std::string* name = query.Get("format");
    auto format = ExportFormatFromName(name ? *name : "json");
    if (!format) {
      return session->RespondJson(
          kOther, 400,
          ErrorJson(ErrorCode::kInvalidRequest, "format is json, csv or ndjson", "format"));
    }
    return OffIoThread([this, session, format = *format] {
      // The projection is locked only for the copy: the writer publishes
      // every group under that lock, and formatting a million users (0.5 s)
      // under it held up every commit (one client's longest wait 470 ms).
      ExportRows rows = ledger->WithProjection(CopyForExport);
      const char* type = format == ExportFormat::kCsv      ? "text/csv"
                         : format == ExportFormat::kNdjson ? "application/x-ndjson"
                                                           : "application/json";
      session->Respond(kOther, Reply{200, FormatExport(std::move(rows), format), type});
    });
  }
  constexpr std::string_view kUsers = "/v1/users/";
  if (path.substr(0, kUsers.size()) == kUsers && get) {
    std::string_view rest = path.substr(kUsers.size());
    size_t slash = rest.rfind('/');
    if (slash != std::string_view::npos) {
      bool ok = true;
      std::string user = PercentDecode(rest.substr(0, slash), &ok);
      if (!ok || !IsValidId(user, kUserIdBytesMax)) {
        return session->RespondJson(
            kOther, 400,
            ErrorJson(ErrorCode::kInvalidRequest,
                      "user id must be 1 to 128 bytes of UTF-8 without control characters",
                      "user_id"));
      }
      return HandleUser(user, rest.substr(slash + 1), query, session);
    }
  }
  session->RespondJson(kOther, 404, ErrorJson(ErrorCode::kNotFound, "no such endpoint"));
}

void HttpServer::Impl::HandleEvents(Request& req, const Query& query,
                                    const std::shared_ptr<Session>& session) {
  std::string_view content_type = req.content_type;
  bool binary = content_type.substr(0, 21) == "application/x-capnp";
  // ?results=compact: Cap'n Proto results without the JSON text the fields
  // already say (FieldsSayAll).
  ResultsForm form = ResultsForm::kFull;
  if (const std::string* results = query.Get("results")) {
    bool compact = *results == "compact";
    if ((!compact && *results != "full") || (compact && !binary)) {
      return session->RespondJson(
          kEvents, 400,
          ErrorJson(ErrorCode::kInvalidRequest,
                    compact ? "results=compact is for Cap'n Proto batches (application/x-capnp)"
                            : "results must be full or compact",
                    "results"));
    }
    if (compact) form = ResultsForm::kCompact;
  }
  ParseOptions parse_options;
  parse_options.allow_client_time = options.allow_client_time;
  ParsedBody body;
  std::optional<ParseError> err;
  if (binary) {
    body.is_batch = true;
    err = DecodeCommandBatch(req.body, parse_options, &body.commands);
  } else {
    err = ParseBody(req.body, parse_options, &body);
  }
  if (err) {
    return session->RespondJson(kEvents, 400,
                                ErrorJson(ErrorCode::kInvalidRequest, err->message, err->field));
  }
  // Invalid commands are answered in place; the valid ones go to the writer.
  // (`invalid` stays empty, and allocates nothing, in the common case.)
  std::vector<Command> valid;
  std::vector<std::pair<size_t, Outcome>> invalid;
  valid.reserve(body.commands.size());
  for (size_t i = 0; i < body.commands.size(); ++i) {
    ParsedCommand& pc = body.commands[i];
    if (pc.error) {
      invalid.emplace_back(i,
                           Outcome::Error(ErrorCode::kInvalidRequest, std::move(pc.error->message),
                                          std::move(pc.error->field)));
    } else {
      valid.push_back(std::move(pc.command));
    }
  }
  // On the connection's thread: answers every command, in request order.
  auto answer = [session, invalid = std::move(invalid), is_batch = body.is_batch, binary,
                 form](std::vector<Outcome> outs) mutable {
    std::vector<Outcome> outcomes = MergeOutcomes(std::move(outs), std::move(invalid));
    if (binary) {
      return session->Respond(kEvents,
                              Reply{200, EncodeResults(outcomes, form), "application/x-capnp"});
    }
    if (is_batch) return session->RespondJson(kEvents, 200, OutcomesJson(outcomes));
    const Outcome& o = outcomes.front();
    std::string out;
    out.reserve(kOutcomeJsonBytes);  // one allocation instead of one per doubling
    AppendOutcomeJson(o, &out);
    session->RespondJson(kEvents, static_cast<unsigned>(HttpStatus(o.code)), std::move(out));
  };
  if (valid.empty()) return answer({});
  ledger->Submit(
      std::move(valid),
      [session, answer = std::move(answer)](std::vector<Outcome> outs) mutable {
        // Runs on the thread that committed the group (the writer's, or this
        // one when alone): hand the outcomes over as they are; the response
        // (JSON or Cap'n Proto) is built on the connection's thread, so the
        // writer goes on to the next group.
        session->Post([answer = std::move(answer), outs = std::move(outs)]() mutable {
          answer(std::move(outs));
        });
      },
      session->AloneOnThread());
}

void HttpServer::Impl::HandleUser(const std::string& user, std::string_view what,
                                  const Query& query, const std::shared_ptr<Session>& session) {
  LogStore* store = ledger->store();
  if (what == "balance") {
    const std::string* at_seq = query.Get("at_seq");
    const std::string* at = query.Get("at");
    if (at_seq || at) {
      // A point in the past: read from the log, never a touch.
      std::string bad;
      Seq seq = 0;
      TimeUs time = 0;
      if (at_seq && at) {
        bad = "at";
      } else if (at_seq) {
        auto n = ParseDecimal(*at_seq);
        if (!n || *n < 1 || static_cast<Seq>(*n) > ledger->Stats().last_seq) bad = "at_seq";
        seq = n ? static_cast<Seq>(*n) : 0;
      } else {
        auto t = ParseTime(*at);
        if (!t || *t <= 0) bad = "at";
        time = t.value_or(0);
      }
      if (!bad.empty()) {
        std::string why = bad == "at_seq" ? "at_seq must be a seq from 1 to the last seq"
                                          : "give one of at_seq or at (an RFC 3339 time)";
        return session->RespondJson(kBalance, 400, ErrorJson(ErrorCode::kInvalidRequest, why, bad));
      }
      return AnswerOffIoThread(session, kBalance, [store, user, seq, time](std::string* body) {
        BalancePoint point;
        Status s = ReadBalanceAt(store, user, seq, time, &point);
        if (s.ok()) *body = BalanceJson(user, point);
        return s;
      });
    }
    auto respond = [this, session, user]() {
      BalanceInfo b = ledger->PeekBalance(user);
      session->RespondJson(
          kBalance, 200, BalanceJson(user, BalancePoint{b.exists, b.balance, b.updated_at, b.seq}));
    };
    // A read is a touch: a due monthly refill is appended first.
    if (ledger->RefillDue(user)) {
      Command touch;
      touch.user_id = user;
      touch.touch_only = true;
      ledger->Submit(
          {std::move(touch)}, [respond](std::vector<Outcome>) { respond(); },
          session->AloneOnThread());
      return;
    }
    return respond();
  }
  if (what == "transactions") {
    HistoryQuery q;
    auto bad = ParseHistoryQuery([&](std::string_view name) { return query.Get(name); }, &q);
    if (bad) {
      return session->RespondJson(kTransactions, 400,
                                  ErrorJson(ErrorCode::kInvalidRequest,
                                            "query parameter '" + *bad + "' is not valid", *bad));
    }
    return AnswerOffIoThread(session, kTransactions,
                             [store, user, q = std::move(q)](std::string* body) {
                               HistoryPage page;
                               Status s = ReadHistory(store, user, q, &page);
                               if (s.ok()) *body = HistoryPageJson(page);
                               return s;
                             });
  }
  if (what == "refund-requests" || what == "disputes") {
    bool disputes = what == "disputes";
    return AnswerOffIoThread(session, disputes ? kDisputes : kRefundRequests,
                             [store, user, disputes](std::string* body) {
                               return disputes ? DisputesJson(store, user, body)
                                               : RefundRequestsJson(store, user, body);
                             });
  }
  session->RespondJson(kOther, 404, ErrorJson(ErrorCode::kNotFound, "no such endpoint"));
}

template <typename Read>
void HttpServer::Impl::AnswerOffIoThread(const std::shared_ptr<Session>& session, Route route,
                                         Read read) {
  OffIoThread([session, route, read = std::move(read)]() mutable {
    std::string body;
    Status s = read(&body);
    if (!s.ok()) {
      return session->RespondJson(route, 500, ErrorJson(ErrorCode::kInternal, s.message()));
    }
    session->RespondJson(route, 200, std::move(body));
  });
}

std::string HttpServer::Impl::MetricsText() {
  std::string out;
  EngineMetrics& m = ledger->metrics();
  LedgerStats stats = ledger->Stats();
  char line[1024];
  out +=
      "# HELP ledger_events_total Events appended, by type.\n# TYPE ledger_events_total counter\n";
  for (int k = 0; k < kKindCount; ++k) {
    std::snprintf(line, sizeof line, "ledger_events_total{type=\"%s\"} %llu\n",
                  std::string(KindName(static_cast<Kind>(k))).c_str(),
                  static_cast<unsigned long long>(m.events_by_kind[k].load()));
    out += line;
  }
  out +=
      "# HELP ledger_rejections_total Commands rejected, by error code.\n"
      "# TYPE ledger_rejections_total counter\n";
  for (size_t c = 1; c < m.rejections_by_code.size(); ++c) {
    std::snprintf(line, sizeof line, "ledger_rejections_total{code=\"%s\"} %llu\n",
                  std::string(ErrorCodeName(static_cast<ErrorCode>(c))).c_str(),
                  static_cast<unsigned long long>(m.rejections_by_code[c].load()));
    out += line;
  }
  std::snprintf(
      line, sizeof line,
      "# TYPE ledger_duplicates_total counter\nledger_duplicates_total %llu\n"
      "# TYPE ledger_group_commits_total counter\nledger_group_commits_total %llu\n"
      "# HELP ledger_overlapped_groups_total Group commits written by the sync thread "
      "while the writer decided the next group.\n"
      "# TYPE ledger_overlapped_groups_total counter\nledger_overlapped_groups_total %llu\n"
      "# HELP ledger_caller_groups_total Group commits written by the thread that submitted "
      "them, the writer being idle and the load low.\n"
      "# TYPE ledger_caller_groups_total counter\nledger_caller_groups_total %llu\n",
      static_cast<unsigned long long>(m.duplicates.load()),
      static_cast<unsigned long long>(m.groups.load()),
      static_cast<unsigned long long>(m.overlapped_groups.load()),
      static_cast<unsigned long long>(m.caller_groups.load()));
  out += line;
  if (const WalPool* pool = ledger->store()->wal_pool()) {
    // A counter of two labelled values.
    auto counter = [&](const char* name, const char* help, const char* label, const char* a,
                       uint64_t a_value, const char* b, uint64_t b_value) {
      std::snprintf(line, sizeof line,
                    "# HELP %s %s\n# TYPE %s counter\n%s{%s=\"%s\"} %llu\n%s{%s=\"%s\"} %llu\n",
                    name, help, name, name, label, a, static_cast<unsigned long long>(a_value),
                    name, label, b, static_cast<unsigned long long>(b_value));
      out += line;
    };
    WalPool::Counts c = pool->counts();
    counter("ledger_wal_files_total",
            "WAL files created, by what they were written over: a zero-filled spare, or "
            "nothing (no spare was ready; each sync then also writes the file's size).",
            "over", "spare", c.spare, "nothing", c.nothing);
    counter("ledger_wal_spares_total",
            "Zero-filled spares made, by what from: a new file (every byte written), or a "
            "deleted WAL file (only what was written in it, over pages still in memory).",
            "from", "new", c.filled, "wal", c.recycled);
  }
  out +=
      "# HELP ledger_group_events Events per group commit.\n# TYPE ledger_group_events histogram\n";
  m.group_events.AppendPrometheus("ledger_group_events", "", &out);
  out +=
      "# HELP ledger_sync_seconds From the start of a group's write until it is durable.\n"
      "# TYPE ledger_sync_seconds histogram\n";
  m.sync_seconds.AppendPrometheus("ledger_sync_seconds", "", &out);
  out +=
      "# HELP ledger_http_requests_total HTTP requests, by route and status class.\n"
      "# TYPE ledger_http_requests_total counter\n";
  for (int r = 0; r < kRouteCount; ++r) {
    for (int c = 1; c <= 5; ++c) {
      uint64_t n = routes[r].by_status_class[c].load();
      if (n == 0) continue;
      std::snprintf(line, sizeof line,
                    "ledger_http_requests_total{route=\"%s\",status=\"%dxx\"} %llu\n",
                    kRouteNames[r], c, static_cast<unsigned long long>(n));
      out += line;
    }
  }
  out +=
      "# HELP ledger_http_request_seconds Request latency, by route.\n"
      "# TYPE ledger_http_request_seconds histogram\n";
  for (int r = 0; r < kRouteCount; ++r) {
    if (routes[r].latency.count() == 0) continue;
    routes[r].latency.AppendPrometheus("ledger_http_request_seconds",
                                       std::string("route=\"") + kRouteNames[r] + "\"", &out);
  }
  std::snprintf(line, sizeof line,
                "# TYPE ledger_users gauge\nledger_users %llu\n"
                "# TYPE ledger_last_seq gauge\nledger_last_seq %llu\n"
                "# TYPE ledger_last_snapshot_seq gauge\nledger_last_snapshot_seq %llu\n"
                "# TYPE ledger_http_connections gauge\nledger_http_connections %zu\n"
                "# HELP ledger_http_reads_total Completed reads of client sockets.\n"
                "# TYPE ledger_http_reads_total counter\nledger_http_reads_total %llu\n"
                "# HELP ledger_http_received_bytes_total Bytes read from client sockets.\n"
                "# TYPE ledger_http_received_bytes_total counter\n"
                "ledger_http_received_bytes_total %llu\n",
                static_cast<unsigned long long>(stats.users),
                static_cast<unsigned long long>(stats.last_seq),
                static_cast<unsigned long long>(stats.last_snapshot_seq), Connections(),
                static_cast<unsigned long long>(IoTotal(&IoThread::reads)),
                static_cast<unsigned long long>(IoTotal(&IoThread::received_bytes)));
  out += line;
  return out;
}

HttpServer::HttpServer(Ledger* ledger, ServerOptions options)
    : impl_(std::make_unique<Impl>(ledger, std::move(options))) {}

HttpServer::~HttpServer() { Stop(std::chrono::milliseconds(0)); }

Status HttpServer::Start() {
  Impl& s = *impl_;
  if (s.options.unix_path.empty() && s.options.token.empty() && !IsLoopbackHost(s.options.host)) {
    return Status::Error("refusing to listen on " + s.options.host +
                         " without a token: set --token-file or LEDGER_TOKEN, or listen on a "
                         "loopback address");
  }
  boost::system::error_code ec;
  Stream::endpoint endpoint;
  std::string where;
  if (!s.options.unix_path.empty()) {
    where = "unix:" + s.options.unix_path;
    Status st = ClearStaleSocket(s.options.unix_path);
    if (!st.ok()) return st;
    endpoint = net::local::stream_protocol::endpoint(s.options.unix_path);
  } else {
    where = s.options.host + ":" + std::to_string(s.options.port);
    std::string host = s.options.host == "localhost" ? "127.0.0.1" : s.options.host;
    auto address = net::ip::make_address(host, ec);
    if (ec) return Status::Error("bad listen address '" + s.options.host + "': " + ec.message());
    endpoint = tcp::endpoint(address, s.options.port);
  }
  s.acceptor.emplace(s.io[0]->ioc);
  s.acceptor->open(endpoint.protocol(), ec);
  if (!ec && s.options.unix_path.empty()) {
    s.acceptor->set_option(net::socket_base::reuse_address(true), ec);
  }
  if (!ec) s.acceptor->bind(endpoint, ec);
  if (!ec) s.acceptor->listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    s.acceptor.reset();
    return Status::Error("cannot listen on " + where + ": " + ec.message());
  }
  if (s.options.unix_path.empty()) {
    s.bound_port = AsTcp(s.acceptor->local_endpoint()).port();
  } else {
    s.bound_socket = s.options.unix_path;
  }
  s.Accept();
  s.reads_work.emplace(s.reads.get_executor());
  for (int i = 0; i < kReadThreads; ++i) {
    s.read_threads.emplace_back([&s] {
      pthread_setname_np(pthread_self(), "ledger-reads");
      s.reads.run();
    });
  }
  for (auto& thread : s.io) {
    thread->work.emplace(thread->ioc.get_executor());
    thread->sweep.emplace(thread->ioc);
    s.Sweep(thread.get());
    s.threads.emplace_back([t = thread.get()] {
      pthread_setname_np(pthread_self(), "ledger-http");
      t->ioc.run();
    });
  }
  return Status::Ok();
}

uint16_t HttpServer::port() const { return impl_->bound_port; }

void HttpServer::Stop(std::chrono::milliseconds drain) {
  Impl& s = *impl_;
  if (s.threads.empty()) return;
  s.stopping.store(true);
  net::post(s.io[0]->ioc, [&s] {
    boost::system::error_code ec;
    if (s.acceptor) s.acceptor->close(ec);
  });
  auto deadline = std::chrono::steady_clock::now() + drain;
  while (s.in_flight.load() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (s.in_flight.load() > 0) {
    std::fprintf(stderr, "ledgerd: drain timed out with %zu requests in flight\n",
                 s.in_flight.load());
  }
  for (auto& thread : s.io) {
    thread->work.reset();
    thread->ioc.stop();
  }
  for (auto& t : s.threads) t.join();
  s.threads.clear();
  // Reads still running past the drain answer into stopped I/O threads:
  // their connections close unanswered, as the writer's would.
  s.reads_work.reset();
  s.reads.stop();
  for (auto& t : s.read_threads) t.join();
  s.read_threads.clear();
  if (!s.bound_socket.empty()) {
    ::unlink(s.bound_socket.c_str());
    s.bound_socket.clear();
  }
}

}  // namespace ledger
