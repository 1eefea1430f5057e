// ledger-read: the projection reader, against a running server or straight
// from a data directory (read-only: snapshot + log tail). See --help.
#include <utility>  // before Boost 1.74's asio, which misses it under C++20

#include <simdjson.h>
#include <algorithm>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/export.h"
#include "engine/json_command.h"
#include "engine/json_writer.h"
#include "engine/log_store.h"
#include "engine/time_format.h"
#include "engine/views.h"
#include "events/codec.h"
#include "replay/recovery.h"
#include "tools/server_url.h"

namespace ledger {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;

constexpr const char* kHelp = R"(ledger-read: balances and histories from the ledger.

Usage: ledger-read SUBCOMMAND [USER] (--server URL | --data DIR) [--json] [options]

  balance USER            the user's balance, last change and last seq
                            --at-seq N   as it was after seq N
                            --at TIME    as it was at TIME (RFC 3339)
  history USER            transactions, newest first
                            --limit N (100, at most 1000)  --before-seq N
                            --type TYPE  --active true|false  --since TIME  --until TIME
                            --group      one line per graph execution (graph_exec_id)
  refund-requests USER    the user's refund requests and their status
  disputes USER           the user's disputes and their status
  top                     users with the highest balances (--limit N, default 10)
  stats                   events, users, last seq, last snapshot, state hash
  export                  every user's balance (--format csv|json|ndjson, default csv)

  --server URL            a running ledgerd: http://HOST:PORT, or unix:PATH for one on a
                          Unix-domain socket (token from LEDGER_TOKEN)
  --data DIR              a data directory, opened read-only (works beside a running server)
  --json                  the API's JSON instead of a table

Exit status: 0 found, 1 not found (an unknown user), 2 usage or I/O error.
)";

[[noreturn]] void Fail(const std::string& message, int code = 2) {
  std::fprintf(stderr, "ledger-read: %s\n", message.c_str());
  std::exit(code);
}

std::string UrlEncode(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

// GET against a running server (http://HOST:PORT, or unix:PATH for one
// listening on a Unix-domain socket); returns the body, exits on transport
// errors.
std::string HttpGet(const std::string& url, const std::string& target) {
  try {
    ServerUrl server = ParseServerUrl(url);
    net::io_context ioc;
    net::generic::stream_protocol::socket stream(ioc);
    boost::system::error_code ec = net::error::host_not_found;
    for (const auto& endpoint : ServerEndpoints(server)) {
      stream.close(ec);
      stream.connect(endpoint, ec);
      if (!ec) break;
    }
    if (ec) throw boost::system::system_error(ec);
    http::request<http::string_body> req{http::verb::get, target, 11};
    req.set(http::field::host, server.host);
    if (const char* token = std::getenv("LEDGER_TOKEN")) {
      req.set(http::field::authorization, std::string("Bearer ") + token);
    }
    http::write(stream, req);
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(1ULL << 32);
    http::read(stream, buffer, parser);
    auto res = parser.release();
    if (res.result_int() != 200) {
      Fail("server answered " + std::to_string(res.result_int()) + ": " +
           res.body().substr(0, 300));
    }
    return res.body();
  } catch (const std::exception& e) {
    Fail("cannot reach " + url + ": " + e.what());
  }
}

// The data directory, opened read-only and recovered (snapshot + log tail).
struct LocalData {
  std::unique_ptr<LogStore> store;
  std::unique_ptr<Projection> projection;
  Seq snapshot_seq = 0;
};

LocalData OpenLocal(const std::string& dir) {
  LocalData d;
  Status s = LogStore::Open(StoreOptions{dir, false, /*read_only=*/true}, &d.store);
  if (!s.ok()) Fail(s.message());
  RecoveryReport report;
  s = Recover(d.store->db(), d.store->log_cf(), d.store->snapshots_cf(), d.store->StoredBounds(),
              ReplayOptions{}, &d.projection, &report);
  if (!s.ok()) Fail("cannot rebuild the projection: " + s.message());
  d.store->SetUserHeads(HeadsOf(*d.projection));
  d.snapshot_seq = report.snapshot_seq;
  return d;
}

// --- tables for people, from the API's JSON ---

std::string Cell(simdjson::dom::element e) {
  switch (e.type()) {
    case simdjson::dom::element_type::STRING:
      return std::string(std::string_view(e));
    case simdjson::dom::element_type::INT64:
      return std::to_string(int64_t(e));
    case simdjson::dom::element_type::UINT64:
      return std::to_string(uint64_t(e));
    case simdjson::dom::element_type::BOOL:
      return bool(e) ? "true" : "false";
    case simdjson::dom::element_type::NULL_VALUE:
      return "-";
    default:
      return simdjson::minify(e);
  }
}

void PrintTable(simdjson::dom::array rows, const std::vector<std::string>& columns) {
  std::vector<std::vector<std::string>> cells;
  std::vector<size_t> width;
  for (const auto& c : columns) width.push_back(c.size());
  for (simdjson::dom::element row : rows) {
    std::vector<std::string> line;
    for (size_t i = 0; i < columns.size(); ++i) {
      simdjson::dom::element v;
      std::string text = row[columns[i]].get(v) == simdjson::SUCCESS ? Cell(v) : "";
      if (text.size() > 60) text = text.substr(0, 57) + "...";
      width[i] = std::max(width[i], text.size());
      line.push_back(std::move(text));
    }
    cells.push_back(std::move(line));
  }
  auto print = [&](const std::vector<std::string>& line) {
    std::string out;
    for (size_t i = 0; i < line.size(); ++i) {
      out += line[i];
      if (i + 1 < line.size()) out += std::string(width[i] - line[i].size() + 2, ' ');
    }
    std::printf("%s\n", out.c_str());
  };
  print(columns);
  for (const auto& line : cells) print(line);
  if (cells.empty()) std::printf("(none)\n");
}

void PrintObject(simdjson::dom::object obj) {
  size_t width = 0;
  for (auto [k, v] : obj) width = std::max(width, k.size());
  for (auto [k, v] : obj) {
    std::printf("%-*s  %s\n", static_cast<int>(width), std::string(k).c_str(), Cell(v).c_str());
  }
}

}  // namespace
}  // namespace ledger

int main(int argc, char** argv) {
  using namespace ledger;
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    std::fputs(kHelp, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  std::string sub = argv[1];
  std::string user, server, data, format = "csv";
  bool json = false;
  std::map<std::string, std::string> q;  // history filters and limits
  for (int i = 2; i < argc; ++i) {
    std::string f = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) Fail(f + " needs a value");
      return argv[++i];
    };
    if (f == "--help" || f == "-h") {
      std::fputs(kHelp, stdout);
      return 0;
    } else if (f == "--server") {
      server = next();
    } else if (f == "--data") {
      data = next();
    } else if (f == "--json") {
      json = true;
    } else if (f == "--format") {
      format = next();
    } else if (f == "--limit" || f == "--before-seq" || f == "--type" || f == "--active" ||
               f == "--since" || f == "--until" || f == "--at-seq" || f == "--at") {
      std::string key = f.substr(2);
      std::replace(key.begin(), key.end(), '-', '_');
      q[key] = next();
    } else if (f == "--group") {
      q["group_by"] = "graph_exec_id";
    } else if (!f.empty() && f[0] != '-' && user.empty()) {
      user = f;
    } else {
      Fail("unknown argument '" + f + "' (see --help)");
    }
  }
  if (server.empty() == data.empty()) Fail("give exactly one of --server URL or --data DIR");
  bool needs_user =
      sub == "balance" || sub == "history" || sub == "refund-requests" || sub == "disputes";
  if (needs_user && user.empty()) Fail(sub + " needs a USER");
  if (!needs_user && sub != "top" && sub != "stats" && sub != "export") {
    Fail("unknown subcommand '" + sub + "' (see --help)");
  }
  if (needs_user && !IsValidId(user, kUserIdBytesMax)) Fail("not a valid user id: " + user);
  bool point_in_time = q.count("at_seq") || q.count("at");
  if (point_in_time && sub != "balance") Fail("--at-seq and --at are for balance");
  if (q.count("at_seq") && q.count("at")) Fail("give one of --at-seq or --at");
  HistoryQuery hq;
  if (sub == "history") {
    auto bad = ParseHistoryQuery(
        [&](std::string_view name) {
          auto it = q.find(std::string(name));
          return it == q.end() ? nullptr : &it->second;
        },
        &hq);
    if (bad) Fail("--" + *bad + " is not valid (see --help)");
  }
  auto export_format = ExportFormatFromName(format);
  if (!export_format) Fail("--format is csv, json or ndjson");

  // Every subcommand yields the API's JSON (or, for export, the export).
  std::string body;
  bool exists = true;
  if (!server.empty()) {
    std::string query;
    for (const auto& [k, v] : q) query += (query.empty() ? "?" : "&") + k + "=" + UrlEncode(v);
    if (needs_user) {
      std::string route = sub == "history"   ? "transactions" + query
                          : sub == "balance" ? "balance" + query
                                             : sub;
      body = HttpGet(server, "/v1/users/" + UrlEncode(user) + "/" + route);
    } else if (sub == "top") {
      body = HttpGet(server, "/v1/top" + query);
    } else if (sub == "stats") {
      body = HttpGet(server, "/v1/stats");
    } else {
      body = HttpGet(server, "/v1/export?format=" + format);
    }
  } else {
    LocalData d = OpenLocal(data);
    const Projection& p = *d.projection;
    if (sub == "balance" && point_in_time) {
      BalancePoint point;
      Seq at_seq = 0;
      TimeUs at = 0;
      if (q.count("at_seq")) {
        at_seq = std::strtoull(q["at_seq"].c_str(), nullptr, 10);
        if (at_seq == 0 || at_seq > p.last_seq()) Fail("--at-seq is 1 to the last seq");
      } else {
        auto t = ParseTime(q["at"]);
        if (!t || *t <= 0) Fail("--at wants an RFC 3339 time");
        at = *t;
      }
      Status s = ReadBalanceAt(d.store.get(), user, at_seq, at, &point);
      if (!s.ok()) Fail(s.message());
      body = BalanceJson(user, point);
      exists = point.exists;
    } else if (sub == "balance") {
      const UserState* s = p.Find(user);
      body = BalanceJson(
          user, s ? BalancePoint{true, s->balance, s->updated_at, s->last_seq} : BalancePoint{});
    } else if (sub == "history") {
      HistoryPage page;
      Status s = ReadHistory(d.store.get(), user, hq, &page);
      if (!s.ok()) Fail(s.message());
      body = HistoryPageJson(page);
    } else if (sub == "refund-requests" || sub == "disputes") {
      Status s = sub == "disputes" ? DisputesJson(d.store.get(), user, &body)
                                   : RefundRequestsJson(d.store.get(), user, &body);
      if (!s.ok()) Fail(s.message());
    } else if (sub == "top") {
      body =
          TopUsersJson(p, q.count("limit") ? std::strtoull(q["limit"].c_str(), nullptr, 10) : 10);
    } else if (sub == "stats") {
      body =
          StatsJson(p.event_count(), p.user_count(), p.last_seq(), d.snapshot_seq, p.state_hash());
    } else {
      body = ExportUsers(p, *export_format);
    }
    if (needs_user && !point_in_time) exists = p.Find(user) != nullptr;
  }

  if (sub == "export" || json) {
    std::fwrite(body.data(), 1, body.size(), stdout);
    if (!body.empty() && body.back() != '\n') std::fputc('\n', stdout);
  } else {
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    if (parser.parse(body).get(doc) != simdjson::SUCCESS)
      Fail("unreadable answer: " + body.substr(0, 200));
    if (sub == "balance" || sub == "stats") {
      PrintObject(doc.get_object().value_unsafe());
    } else if (sub == "history") {
      std::vector<std::string> columns = {
          "seq", "time", "type", "key", "amount", "applied", "running_balance", "active"};
      if (q.count("group_by")) columns.insert(columns.begin() + 4, "node_count");
      PrintTable(doc["transactions"].get_array().value_unsafe(), columns);
      simdjson::dom::element next;
      if (doc["next_before_seq"].get(next) == simdjson::SUCCESS && !next.is_null()) {
        std::printf("more: --before-seq %s\n", Cell(next).c_str());
      }
    } else if (sub == "refund-requests") {
      PrintTable(doc["refund_requests"].get_array().value_unsafe(),
                 {"seq", "time", "payment_key", "amount", "decision", "status", "reason"});
    } else if (sub == "disputes") {
      PrintTable(doc["disputes"].get_array().value_unsafe(),
                 {"key", "payment_key", "amount", "status", "open", "applied", "updated_at"});
    } else {
      PrintTable(doc["users"].get_array().value_unsafe(), {"user_id", "balance", "updated_at"});
    }
  }
  if (needs_user && !server.empty()) {
    // The server has no "unknown user" for reads: a user with no events has
    // seq 0 / no history; ask the balance for it.
    std::string b =
        sub == "balance" ? body : HttpGet(server, "/v1/users/" + UrlEncode(user) + "/balance");
    exists = b.find("\"seq\":0}") == std::string::npos;
  }
  return exists ? 0 : 1;
}
