// ledger-import: moves a PostgreSQL credit ledger (the seeds' tables, exported
// with psql's \copy as CSV) into a ledger data directory. See --help and the
// README's "Migrating from PostgreSQL".
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "engine/importer.h"

namespace ledger {
namespace {

constexpr const char* kHelp = R"(ledger-import: migrate the PostgreSQL credit tables into a ledger.

Usage: ledger-import --data DIR --from EXPORT_DIR [--json]
       ledger-import --data DIR --transactions FILE --balances FILE [--users FILE] [--json]

  --data DIR          the ledger's data directory (created if missing). The
                      server must not be running on it during the import.
  --from EXPORT_DIR   a directory with CreditTransaction.csv, UserBalance.csv
                      and (optional) User.csv, as tools/pg-export.sql writes them
  --transactions FILE / --balances FILE / --users FILE
                      the same files named one by one
  --json              the report as JSON on stdout

Every CreditTransaction row becomes an event with its original key, time and
metadata; inactive top-ups and grants stay pending. Then every user's balance
is compared with their UserBalance row, and a difference is reported and set
right by an adjust with the reason "migration". Running it again appends
nothing. Exit status: 0 imported (findings are in the report), 2 usage or I/O
error.
)";

[[noreturn]] void Fail(const std::string& message) {
  std::fprintf(stderr, "ledger-import: %s\n", message.c_str());
  std::exit(2);
}

bool Exists(const std::string& path) { return access(path.c_str(), R_OK) == 0; }

}  // namespace
}  // namespace ledger

int main(int argc, char** argv) {
  using namespace ledger;
  std::string data, from;
  ImportFiles files;
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    std::string f = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) Fail(f + " needs a value");
      return argv[++i];
    };
    if (f == "--help" || f == "-h") {
      std::fputs(kHelp, stdout);
      return 0;
    } else if (f == "--data") {
      data = next();
    } else if (f == "--from") {
      from = next();
    } else if (f == "--transactions") {
      files.transactions = next();
    } else if (f == "--balances") {
      files.balances = next();
    } else if (f == "--users") {
      files.users = next();
    } else if (f == "--json") {
      json = true;
    } else {
      Fail("unknown argument '" + f + "' (see --help)");
    }
  }
  if (data.empty()) Fail("--data DIR is required (see --help)");
  if (!from.empty()) {
    if (files.transactions.empty()) files.transactions = from + "/CreditTransaction.csv";
    if (files.balances.empty()) files.balances = from + "/UserBalance.csv";
    if (files.users.empty() && Exists(from + "/User.csv")) files.users = from + "/User.csv";
  }
  if (files.transactions.empty() || files.balances.empty()) {
    Fail("give --from EXPORT_DIR, or --transactions and --balances (see --help)");
  }
  for (const std::string* f : {&files.transactions, &files.balances, &files.users}) {
    if (!f->empty() && !Exists(*f)) Fail("cannot read " + *f);
  }

  // Imports carry their own times; no monthly refill may interleave.
  LedgerOptions options;
  options.data_dir = data;
  options.sync = false;  // one sync at the end: a re-run repairs an interrupted import
  std::unique_ptr<Ledger> ledger;
  Status s = Ledger::Open(options, &ledger);
  if (!s.ok()) Fail("cannot open " + data + ": " + s.message());
  auto start = std::chrono::steady_clock::now();
  bool tty = isatty(2) != 0;
  ImportReport report;
  s = RunImport(ledger.get(), files, &report, [&](size_t done, size_t total) {
    if (tty) std::fprintf(stderr, "\rledger-import: %zu / %zu rows", done, total);
  });
  if (tty) std::fputc('\n', stderr);
  if (!s.ok()) Fail(s.message());
  rocksdb::Status synced = ledger->store()->db()->SyncWAL();
  if (!synced.ok()) Fail("cannot sync " + data + ": " + synced.ToString());
  LedgerStats stats = ledger->Stats();
  ledger->Close();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  if (json) {
    std::printf("%s\n", ImportReportJson(report).c_str());
    return 0;
  }
  std::printf("rows read            %zu\n", report.rows);
  std::printf("events appended      %zu (of which %zu as adjust)\n", report.appended,
              report.as_adjust);
  std::printf("already imported     %zu (activated since: %zu)\n", report.already,
              report.activated);
  std::printf("skipped              %zu\n", report.skipped);
  std::printf("keys rewritten       %zu\n", report.rekeyed);
  std::printf("running balances     %zu checked, %zu differ\n", report.running_checked,
              report.running_mismatch);
  std::printf("UserBalance rows     %zu, %zu set right by a migration adjust\n",
              report.balance_rows, report.users_adjusted);
  if (report.users_in_user_table) {
    std::printf("User rows            %zu (%zu ledger users without one)\n",
                report.users_in_user_table, report.users_not_in_user_table);
  }
  std::printf("ledger               %llu events, %llu users, last seq %llu (%.1f s)\n",
              static_cast<unsigned long long>(stats.events),
              static_cast<unsigned long long>(stats.users),
              static_cast<unsigned long long>(stats.last_seq), secs);
  for (const std::string& n : report.notes) std::printf("  %s\n", n.c_str());
  return 0;
}
