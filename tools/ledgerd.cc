// ledgerd: the ingestion server. Wires the engine and the HTTP server from
// flags; see --help.
#include <signal.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "engine/crc32c.h"
#include "engine/http_server.h"
#include "engine/ledger.h"
#include "engine/price_table.h"
#include "engine/text.h"
#include "tools/malloc_tuning.h"

namespace {

constexpr const char* kHelp = R"(ledgerd: the credit ledger's ingestion server.

Usage: ledgerd [flags]

  --listen HOST:PORT      address to serve (default 127.0.0.1:8080; port 0 picks one)
  --listen unix:PATH      serve on a Unix-domain socket instead: clients on this
                          machine only, allowed by the file's permissions; about half
                          the kernel's work per request of loopback TCP
  --data DIR              data directory, created if missing (default ./var/ledger)
  --token-file FILE       bearer token for /v1 (default: env LEDGER_TOKEN; none: loopback only)
  --refund-tolerance N    REFUND_TOLERANCE for refund requests and disputes (default 0)
  --monthly-refill N      monthly refill target (default off)
  --prices FILE           price table for priced usage (default none)
  --allow-client-time     accept `time` in commands (imports, tests)
  --sync full|none        fsync each group commit (default full; none loses data on a crash)
  --snapshot-every N      events between snapshots (default 1000000)
  --wal-file-mb N         zero-filled files kept ready for the write-ahead log, in MiB
                          (default 64; 0: none, each group commit then also grows a file)
  --flush-io direct|buffered
                          how flushes and compactions write table files: buffered
                          (through the page cache, the default: the WAL's syncs do
                          not wait behind them) or direct (O_DIRECT: less CPU per
                          event where the disk keeps up anyway)
  --io-threads N          HTTP I/O threads (default 2)
  --request-timeout SECS  time a connection has to send each whole request (default 30)
  --no-access-log         do not print one line per request
  --help                  this text

It prints "listening on HOST:PORT" (or "listening on unix:PATH") once it
serves. SIGTERM or SIGINT stops it: it stops accepting, answers what is in
flight, and exits 0.
)";

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "ledgerd: %s\n", message.c_str());
  std::exit(2);
}

int64_t ParseNumber(const std::string& flag, const std::string& value, int64_t min, int64_t max) {
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(value.c_str(), &end, 10);
  if (value.empty() || *end != '\0' || errno != 0 || v < min || v > max) {
    Die(flag + " wants a whole number from " + std::to_string(min) + " to " + std::to_string(max) +
        ", not '" + value + "'");
  }
  return v;
}

std::string ReadFileTrimmed(const std::string& path) {
  std::string s;
  if (ledger::Status st = ledger::ReadWholeFile(path, &s); !st.ok()) Die(st.message());
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  ledger::KeepFreedMemory();  // before any thread starts
  ledger::LedgerOptions lo;
  lo.wal_file_bytes = uint64_t{64} << 20;
  ledger::ServerOptions so;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    std::string value;
    size_t eq = flag.find('=');
    bool inline_value = flag.rfind("--", 0) == 0 && eq != std::string::npos;
    if (inline_value) {
      value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
    }
    auto next = [&]() -> std::string {
      if (inline_value) return value;
      if (i + 1 >= argc) Die(flag + " needs a value");
      return argv[++i];
    };
    if (flag == "--help" || flag == "-h") {
      std::fputs(kHelp, stdout);
      return 0;
    } else if (flag == "--listen") {
      std::string v = next();
      so.unix_path.clear();
      if (v.rfind("unix:", 0) == 0) {
        so.unix_path = v.substr(5);
        if (so.unix_path.empty()) Die("--listen unix: wants a path");
      } else {
        size_t colon = v.rfind(':');
        if (colon == std::string::npos) Die("--listen wants HOST:PORT or unix:PATH");
        so.host = v.substr(0, colon);
        if (so.host.size() > 2 && so.host.front() == '[' && so.host.back() == ']') {
          so.host = so.host.substr(1, so.host.size() - 2);
        }
        so.port =
            static_cast<uint16_t>(ParseNumber("--listen port", v.substr(colon + 1), 0, 65535));
      }
    } else if (flag == "--data") {
      lo.data_dir = next();
    } else if (flag == "--token-file") {
      so.token = ReadFileTrimmed(next());
      if (so.token.empty()) Die("the token file is empty");
    } else if (flag == "--refund-tolerance") {
      lo.refund_tolerance = ParseNumber(flag, next(), 0, 2147483647);
    } else if (flag == "--monthly-refill") {
      lo.monthly_refill = ParseNumber(flag, next(), 0, 2147483647);
    } else if (flag == "--prices") {
      std::unique_ptr<ledger::PriceTable> prices;
      ledger::Status s = ledger::PriceTable::Load(next(), &prices);
      if (!s.ok()) Die(s.message());
      lo.prices = std::move(prices);
    } else if (flag == "--allow-client-time") {
      so.allow_client_time = true;
    } else if (flag == "--sync") {
      std::string v = next();
      if (v != "full" && v != "none") Die("--sync wants full or none");
      lo.sync = v == "full";
    } else if (flag == "--snapshot-every") {
      lo.snapshot_every = static_cast<uint64_t>(ParseNumber(flag, next(), 1, int64_t{1} << 40));
    } else if (flag == "--wal-file-mb") {
      lo.wal_file_bytes = static_cast<uint64_t>(ParseNumber(flag, next(), 0, 4096)) << 20;
    } else if (flag == "--flush-io") {
      std::string v = next();
      if (v != "direct" && v != "buffered") Die("--flush-io wants direct or buffered");
      lo.flush_direct_io = v == "direct";
    } else if (flag == "--io-threads") {
      so.io_threads = static_cast<int>(ParseNumber(flag, next(), 1, 64));
    } else if (flag == "--request-timeout") {
      so.request_timeout = std::chrono::seconds(ParseNumber(flag, next(), 1, 3600));
    } else if (flag == "--no-access-log") {
      so.access_log = false;
    } else {
      Die("unknown flag '" + flag + "' (see --help)");
    }
  }
  if (so.token.empty()) {
    if (const char* env = std::getenv("LEDGER_TOKEN"); env != nullptr && *env != '\0') {
      so.token = env;
    }
  }

  // Block the stop signals before any thread starts; a signal_set takes them.
  boost::asio::io_context signals_ctx;
  boost::asio::signal_set signals(signals_ctx, SIGTERM, SIGINT);

  std::unique_ptr<ledger::Ledger> ledger;
  ledger::Status s = ledger::Ledger::Open(lo, &ledger);
  if (!s.ok()) Die(s.message());
  ledger::LedgerStats stats = ledger->Stats();
  std::fprintf(stderr, "ledgerd: data %s: %llu events, %llu users, last seq %llu\n",
               lo.data_dir.c_str(), static_cast<unsigned long long>(stats.events),
               static_cast<unsigned long long>(stats.users),
               static_cast<unsigned long long>(stats.last_seq));
  if (lo.flush_direct_io && !ledger->store()->flush_direct_io()) {
    std::fprintf(stderr,
                 "ledgerd: the data directory's file system refuses O_DIRECT: table files "
                 "are written through the page cache (more CPU per event)\n");
  }

  if (!ledger::Crc32cInHardware()) {
    std::fprintf(stderr,
                 "ledgerd: this CPU has no crc32 instruction (SSE4.2): RocksDB's checksums are "
                 "computed in software (more CPU per event)\n");
  }

  ledger::HttpServer server(ledger.get(), so);
  s = server.Start();
  if (!s.ok()) Die(s.message());
  if (so.unix_path.empty()) {
    std::printf("listening on %s:%u\n", so.host.c_str(), server.port());
  } else {
    std::printf("listening on unix:%s\n", so.unix_path.c_str());
  }
  std::fflush(stdout);

  int stop_signal = 0;
  signals.async_wait([&](const boost::system::error_code&, int sig) { stop_signal = sig; });
  signals_ctx.run();

  std::fprintf(stderr, "ledgerd: signal %d: draining\n", stop_signal);
  server.Stop();
  ledger->Close();
  std::fflush(stdout);
  stats = ledger->Stats();
  std::fprintf(stderr, "ledgerd: stopped at seq %llu\n",
               static_cast<unsigned long long>(stats.last_seq));
  return 0;
}
