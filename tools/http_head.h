// Header lookup for the hand-written HTTP/1.1 peers of the benchmark (the
// load generator and the ceiling server; ledgerd itself parses with Beast).
#pragma once

#include <strings.h>

#include <charconv>
#include <string_view>

namespace ledger {

// The value of header `name` (case-insensitive) in `head`, the request or
// status line and the headers without the final blank line; empty when
// absent.
inline std::string_view HeaderValue(std::string_view head, std::string_view name) {
  for (size_t p = head.find("\r\n"); p != std::string_view::npos; p = head.find("\r\n", p + 2)) {
    std::string_view line = head.substr(p + 2, head.find("\r\n", p + 2) - (p + 2));
    if (line.size() <= name.size() || line[name.size()] != ':') continue;
    if (strncasecmp(line.data(), name.data(), name.size()) != 0) continue;
    std::string_view v = line.substr(name.size() + 1);
    while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
    return v;
  }
  return {};
}

// Content-Length as a number; -1 when absent or not a number.
inline long ContentLength(std::string_view head) {
  std::string_view v = HeaderValue(head, "Content-Length");
  long n = -1;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  return ec == std::errc() && end != v.data() ? n : -1;
}

}  // namespace ledger
