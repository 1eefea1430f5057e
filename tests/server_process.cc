#include "tests/server_process.h"
#include "tests/test_support.h"

#include <utility>  // before Boost 1.74's asio, which misses it under C++20

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace ledger::testing {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;

ServerProcess::ServerProcess(const std::string& data_dir, std::vector<std::string> args,
                             std::map<std::string, std::string> env) {
  const char* binary = std::getenv("LEDGERD");
  if (binary == nullptr) throw std::runtime_error("set LEDGERD to the ledgerd binary");
  log_path_ = data_dir + ".server.log";
  std::remove(log_path_.c_str());  // a restart must not read the last run's port
  std::vector<std::string> argv = {binary, "--listen", "127.0.0.1:0", "--data", data_dir};
  argv.insert(argv.end(), args.begin(), args.end());
  pid_ = fork();
  if (pid_ == 0) {
    FILE* log = std::fopen(log_path_.c_str(), "a");
    if (log != nullptr) {
      dup2(fileno(log), 1);
      dup2(fileno(log), 2);
    }
    for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
    std::vector<char*> cargv;
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    execv(cargv[0], cargv.data());
    _exit(127);
  }
  // Wait for "listening on 127.0.0.1:PORT" or "listening on unix:PATH" (or
  // the process to exit).
  for (int i = 0; i < 1000 && !started(); ++i) {
    std::string out = Slurp(log_path_);
    // The rest of the last whole line starting "listening on `prefix`".
    auto listening_on = [&out](const std::string& prefix) -> std::optional<std::string> {
      size_t pos = out.rfind("listening on " + prefix);
      if (pos == std::string::npos) return std::nullopt;
      size_t start = pos + std::string("listening on ").size() + prefix.size();
      size_t end = out.find('\n', start);
      if (end == std::string::npos) return std::nullopt;
      return out.substr(start, end - start);
    };
    if (auto port = listening_on("127.0.0.1:")) port_ = std::atoi(port->c_str());
    if (auto path = listening_on("unix:")) unix_path_ = *path;
    int status = 0;
    if (!started() && waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return;
    }
    if (!started()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) Stop(SIGKILL);
}

int ServerProcess::Stop(int signal) {
  if (pid_ <= 0) return -1;
  kill(pid_, signal);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + WTERMSIG(status);
}

std::string ServerProcess::Output() const { return Slurp(log_path_); }

struct HttpClient::Impl {
  net::io_context ioc;
  net::generic::stream_protocol::socket stream{ioc};
  net::generic::stream_protocol::endpoint server;
  beast::flat_buffer buffer;
  std::string token;
};

HttpClient::HttpClient(int port, std::string token) : impl_(std::make_unique<Impl>()) {
  impl_->token = std::move(token);
  impl_->server =
      net::ip::tcp::endpoint(net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port));
  impl_->stream.connect(impl_->server);
}

HttpClient::HttpClient(const std::string& unix_path, std::string token)
    : impl_(std::make_unique<Impl>()) {
  impl_->token = std::move(token);
  impl_->server = net::local::stream_protocol::endpoint(unix_path);
  impl_->stream.connect(impl_->server);
}

HttpClient::~HttpClient() {
  beast::error_code ec;
  impl_->stream.shutdown(net::socket_base::shutdown_both, ec);
}

HttpResult HttpClient::Request(const std::string& method, const std::string& target,
                               const std::string& body, const std::string& content_type) {
  http::request<http::string_body> req{http::string_to_verb(method), target, 11};
  req.set(http::field::host, "127.0.0.1");
  req.keep_alive(true);
  if (!impl_->token.empty()) req.set(http::field::authorization, "Bearer " + impl_->token);
  if (!body.empty() || method == "POST") {
    req.set(http::field::content_type, content_type);
    req.body() = body;
  }
  req.prepare_payload();
  http::write(impl_->stream, req);
  http::response_parser<http::string_body> parser;
  parser.body_limit(1 << 30);
  http::read(impl_->stream, impl_->buffer, parser);
  auto res = parser.release();
  HttpResult out;
  out.status = res.result_int();
  out.body = std::move(res.body());
  out.content_type = std::string(res[http::field::content_type]);
  if (!res.keep_alive()) {
    // The server closed this connection: open a new one for the next request.
    beast::error_code ec;
    impl_->stream.close(ec);
    impl_->buffer.clear();
    impl_->stream.connect(impl_->server);
  }
  return out;
}

}  // namespace ledger::testing
