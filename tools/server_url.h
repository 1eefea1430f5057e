// Where a tool's --url / --server names a running ledgerd: http://HOST:PORT
// (port 80 when none is given), or unix:PATH for one listening on a
// Unix-domain socket (ledgerd --listen unix:PATH).
#pragma once

#include <utility>  // before Boost 1.74's asio, which misses it under C++20

#include <boost/asio.hpp>
#include <string>
#include <vector>

namespace ledger {

struct ServerUrl {
  std::string host = "localhost";  // for the Host header
  std::string port;
  std::string unix_path;  // set: the socket to connect to, host:port unused
};

inline ServerUrl ParseServerUrl(std::string url) {
  ServerUrl out;
  if (url.rfind("unix:", 0) == 0) {
    out.unix_path = url.substr(5);
    return out;
  }
  if (url.rfind("http://", 0) == 0) url = url.substr(7);
  while (!url.empty() && url.back() == '/') url.pop_back();
  size_t colon = url.rfind(':');
  out.host = url.substr(0, colon);
  out.port = colon == std::string::npos ? "80" : url.substr(colon + 1);
  return out;
}

// The addresses to try, in order; throws boost::system::system_error for an
// unknown host or a socket path too long for an address.
inline std::vector<boost::asio::generic::stream_protocol::endpoint> ServerEndpoints(
    const ServerUrl& url) {
  namespace net = boost::asio;
  std::vector<net::generic::stream_protocol::endpoint> out;
  if (!url.unix_path.empty()) {
    out.emplace_back(net::local::stream_protocol::endpoint(url.unix_path));
    return out;
  }
  net::io_context ioc;
  net::ip::tcp::resolver resolver(ioc);
  for (const auto& entry : resolver.resolve(url.host, url.port)) out.emplace_back(entry.endpoint());
  return out;
}

}  // namespace ledger
