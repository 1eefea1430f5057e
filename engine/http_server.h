// The ingestion server: HTTP/1.1 with keep-alive on Boost.Beast, a few I/O
// threads, the engine's group commit behind it (SPEC §3).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "engine/ledger.h"

namespace ledger {

// Limits on what one client can make the server hold or do.
inline constexpr size_t kBodyBytesMax = 16 << 20;    // SPEC: bodies over 16 MiB get 413
inline constexpr size_t kHeaderBytesMax = 16 << 10;  // request line + headers
inline constexpr size_t kConnectionsMax = 4096;      // beyond it new connections are closed

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;  // 0: pick a free port (tests)
  // Non-empty: serve on this Unix-domain socket instead of host:port. Who
  // may connect is the file's permissions (the process's umask); a stale
  // socket left by a killed server is replaced, a live one refused.
  std::string unix_path;
  int io_threads = 2;
  std::string token;  // empty: no auth, loopback addresses only
  bool allow_client_time = false;
  bool access_log = true;  // one line per request on stdout
  // A connection must deliver each whole request within this time (covers
  // idle keep-alive connections and slow clients alike).
  std::chrono::seconds request_timeout{30};
};

class HttpServer {
 public:
  HttpServer(Ledger* ledger, ServerOptions options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and starts the I/O threads. Refuses a non-loopback address when no
  // token is configured.
  Status Start();
  uint16_t port() const;  // 0 on a Unix-domain socket

  // Stops accepting, waits (up to `drain`) for requests in flight to be
  // answered, then stops the I/O threads. Idempotent.
  void Stop(std::chrono::milliseconds drain = std::chrono::milliseconds(10000));

 private:
  struct Impl;
  friend class Session;
  std::unique_ptr<Impl> impl_;
};

// Whether `host` is a loopback address (127.0.0.0/8, ::1, localhost).
bool IsLoopbackHost(const std::string& host);

}  // namespace ledger
