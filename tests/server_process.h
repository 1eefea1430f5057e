// Runs the real ledgerd binary (path in $LEDGERD, set by meson) as a child
// process on an ephemeral loopback port (or a Unix-domain socket), and
// speaks HTTP to it.
#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace ledger::testing {

class ServerProcess {
 public:
  // Starts ledgerd with `args` plus --listen 127.0.0.1:0 --data `data_dir`;
  // waits for it to listen. `env` entries are added to the environment.
  ServerProcess(const std::string& data_dir, std::vector<std::string> args = {},
                std::map<std::string, std::string> env = {});
  ~ServerProcess();

  bool started() const { return port_ != 0 || !unix_path_.empty(); }
  int port() const { return port_; }
  // Set when it listens on a Unix-domain socket (args hold --listen unix:PATH).
  const std::string& unix_path() const { return unix_path_; }
  pid_t pid() const { return pid_; }
  // Sends `signal` and waits; returns the exit status (or 128+signal).
  int Stop(int signal);
  // Everything the server printed (stdout and stderr).
  std::string Output() const;

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  std::string unix_path_;
  std::string log_path_;
};

struct HttpResult {
  int status = 0;
  std::string body;
  std::string content_type;
};

// A keep-alive HTTP/1.1 connection.
class HttpClient {
 public:
  explicit HttpClient(int port, std::string token = {});
  // Over a Unix-domain socket (ledgerd --listen unix:PATH).
  explicit HttpClient(const std::string& unix_path, std::string token = {});
  ~HttpClient();
  HttpResult Request(const std::string& method, const std::string& target,
                     const std::string& body = {},
                     const std::string& content_type = "application/json");
  HttpResult Post(const std::string& body) { return Request("POST", "/v1/events", body); }
  HttpResult Get(const std::string& target) { return Request("GET", target); }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ledger::testing
