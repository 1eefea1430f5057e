// The machine's loopback HTTP ceiling (issue 6): a server that does nothing
// but read each request and answer it with a canned answer of the shape
// ledgerd gives (one result for a single command, --batch results for a JSON
// or Cap'n Proto batch). ledger-loadgen driven against it measures what the
// kernel's TCP on loopback and the load generator leave on this machine for
// any server, before the server parses, decides or writes anything.
// `--listen unix:PATH` measures the same over a Unix-domain socket.
//
//   ./build/bench_http_ceiling [--listen 127.0.0.1:8090|unix:PATH] [--threads 2] [--batch 1000]
//
// It is written on epoll directly, level-triggered, one read per readiness:
// the leanest server this machine can run, so its rate is an upper bound.
// Not a server to use: it checks nothing and records nothing.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "engine/capnp_batch.h"
#include "engine/outcome.h"
#include "tools/http_head.h"

using ledger::ContentLength;
using ledger::HeaderValue;

namespace {

constexpr size_t kHeadBytesMax = 16 << 10;  // as ledgerd's limits
constexpr size_t kBodyBytesMax = 16 << 20;

struct Answers {
  std::string single;      // whole HTTP responses, head and body
  std::string json_batch;  //
  std::string capnp_batch;
};

ledger::Outcome SampleOutcome(uint64_t i) {
  ledger::Outcome o;
  o.seq = 1000000 + i;
  o.user_id = "u-" + std::to_string(1000 + i % 9000);
  o.key = "bench-1763790216-0-" + std::to_string(i);
  o.kind = ledger::Kind::kUsage;
  o.amount = -5;
  o.applied = -5;
  o.balance = 999995;
  o.time_us = 1763790216227216;
  return o;
}

std::string Response(std::string_view content_type, const std::string& body) {
  return "HTTP/1.1 200 OK\r\nServer: ledgerd\r\nContent-Type: " + std::string(content_type) +
         "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

Answers MakeAnswers(int batch) {
  Answers a;
  std::string one;
  ledger::AppendOutcomeJson(SampleOutcome(0), &one);
  a.single = Response("application/json", one);
  std::vector<ledger::Outcome> outcomes;
  for (int i = 0; i < batch; ++i) outcomes.push_back(SampleOutcome(static_cast<uint64_t>(i)));
  a.json_batch = Response("application/json", ledger::OutcomesJson(outcomes));
  a.capnp_batch = Response("application/x-capnp", ledger::EncodeResults(outcomes));
  return a;
}

// One connection: the bytes of the request being read, the answer being sent.
struct Conn {
  int fd = -1;
  std::string in;
  const std::string* out = nullptr;
  size_t written = 0;
  bool watching_out = false;  // registered for EPOLLOUT (an answer is half sent)
};

class Worker {
 public:
  explicit Worker(const Answers& answers) : answers_(answers), epfd_(epoll_create1(0)) {}

  void Add(int fd) {
    auto* c = new Conn;
    c->fd = fd;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = c;
    if (epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0) Close(c);
  }

  void Run() {
    std::vector<epoll_event> events(256);
    char buf[1 << 16];
    for (;;) {
      int n = epoll_wait(epfd_, events.data(), static_cast<int>(events.size()), -1);
      for (int i = 0; i < n; ++i) {
        auto* c = static_cast<Conn*>(events[i].data.ptr);
        if (c->out) {
          Send(c);
          continue;
        }
        ssize_t got = recv(c->fd, buf, sizeof buf, 0);
        if (got <= 0) {
          if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
          Close(c);
          continue;
        }
        c->in.append(buf, static_cast<size_t>(got));
        size_t head_end = c->in.find("\r\n\r\n");
        if (head_end == std::string::npos) {
          if (c->in.size() > kHeadBytesMax) Close(c);
          continue;
        }
        std::string_view head(c->in.data(), head_end);
        long content_length = ContentLength(head);
        size_t length = content_length < 0 ? 0 : static_cast<size_t>(content_length);
        if (length > kBodyBytesMax) {
          Close(c);
          continue;
        }
        if (c->in.size() < head_end + 4 + length) continue;
        bool capnp = HeaderValue(head, "Content-Type").find("capnp") != std::string_view::npos;
        bool batch = capnp || (length > 0 && c->in[head_end + 4] == '[');
        c->out = capnp ? &answers_.capnp_batch : batch ? &answers_.json_batch : &answers_.single;
        c->written = 0;
        c->in.clear();
        Send(c);
      }
    }
  }

 private:
  // Sends what the socket takes; waits for EPOLLOUT for the rest.
  void Send(Conn* c) {
    while (c->written < c->out->size()) {
      ssize_t n =
          send(c->fd, c->out->data() + c->written, c->out->size() - c->written, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) return Watch(c, EPOLLOUT);
      if (n <= 0) return Close(c);
      c->written += static_cast<size_t>(n);
    }
    c->out = nullptr;
    if (c->watching_out) Watch(c, EPOLLIN);
  }

  void Watch(Conn* c, uint32_t what) {
    c->watching_out = what == EPOLLOUT;
    epoll_event ev{};
    ev.events = what;
    ev.data.ptr = c;
    epoll_ctl(epfd_, EPOLL_CTL_MOD, c->fd, &ev);
  }

  void Close(Conn* c) {
    close(c->fd);
    delete c;
  }

  const Answers& answers_;
  int epfd_;
};

}  // namespace

int main(int argc, char** argv) {
  std::string listen = "127.0.0.1:8090";
  int threads = 2, batch = 1000;
  for (int i = 1; i < argc; ++i) {
    std::string f = argv[i];
    if (f == "-h" || f == "--help") {
      std::puts("bench_http_ceiling [--listen HOST:PORT|unix:PATH] [--threads N] [--batch N]");
      return 0;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "%s needs a value\n", f.c_str());
      return 2;
    }
    std::string v = argv[++i];
    if (f == "--listen") {
      listen = v;
    } else if (f == "--threads") {
      threads = std::atoi(v.c_str());
    } else if (f == "--batch") {
      batch = std::atoi(v.c_str());
    } else {
      std::fprintf(stderr, "unknown flag %s\n", f.c_str());
      return 2;
    }
  }
  bool unix_socket = listen.rfind("unix:", 0) == 0;
  sockaddr_storage any{};
  socklen_t any_len = 0;
  auto& addr = reinterpret_cast<sockaddr_in&>(any);
  size_t colon = listen.rfind(':');
  if (unix_socket) {
    auto& un = reinterpret_cast<sockaddr_un&>(any);
    std::string path = listen.substr(5);
    un.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof un.sun_path) {
      std::fprintf(stderr, "--listen unix:PATH, the path under %zu bytes\n", sizeof un.sun_path);
      return 2;
    }
    std::memcpy(un.sun_path, path.data(), path.size());
    any_len = sizeof un;
    unlink(path.c_str());  // a socket left by an earlier run (it is killed, not stopped)
  } else {
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(std::atoi(listen.c_str() + colon + 1)));
    any_len = sizeof addr;
    if (colon == std::string::npos ||
        inet_pton(AF_INET, listen.substr(0, colon).c_str(), &addr.sin_addr) != 1) {
      std::fprintf(stderr, "--listen IPV4:PORT or unix:PATH\n");
      return 2;
    }
  }
  if (threads < 1 || batch < 1) {
    std::fprintf(stderr, "--threads and --batch at least 1\n");
    return 2;
  }
  int lfd = socket(any.ss_family, SOCK_STREAM, 0);
  int one = 1;
  if (!unix_socket) setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(lfd, reinterpret_cast<sockaddr*>(&any), any_len) != 0 || ::listen(lfd, 1024) != 0) {
    std::fprintf(stderr, "cannot listen on %s: %s\n", listen.c_str(), std::strerror(errno));
    return 1;
  }
  Answers answers = MakeAnswers(batch);
  std::vector<std::unique_ptr<Worker>> workers;
  for (int t = 0; t < threads; ++t) {
    workers.push_back(std::make_unique<Worker>(answers));
    std::thread([w = workers.back().get()] { w->Run(); }).detach();
  }
  if (unix_socket) {
    std::printf("listening on %s (answers without doing anything)\n", listen.c_str());
  } else {
    socklen_t len = sizeof addr;
    getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len);  // the port, when 0 was asked
    std::printf("listening on %s:%d (answers without doing anything)\n",
                listen.substr(0, colon).c_str(), ntohs(addr.sin_port));
  }
  std::fflush(stdout);
  for (size_t next = 0;; ++next) {
    int fd = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    if (!unix_socket) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    workers[next % workers.size()]->Add(fd);
  }
}
