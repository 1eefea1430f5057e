// ledger-import end to end against a real PostgreSQL 15 (Debian's), started
// by the test in a temporary directory on a loopback port: the seeds' tables
// filled with a few thousand rows of every kind, exported with the README's
// `\copy` commands (tools/pg/export.sql), imported, compared row by row, and
// imported again without a change.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>

#include "engine/csv.h"
#include "engine/importer.h"
#include "engine/json_command.h"
#include "engine/log_store.h"
#include "engine/time_format.h"
#include "replay/recovery.h"
#include "tests/json_view.h"
#include "tests/process_util.h"
#include "tests/test_support.h"

namespace ledger::testing {
namespace {

namespace fs = std::filesystem;

std::string PgBinDir() {
  if (const char* dir = std::getenv("PG_BINDIR")) return dir;
  std::string best;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/usr/lib/postgresql", ec)) {
    std::string bin = e.path().string() + "/bin";
    if (fs::exists(bin + "/initdb") && bin > best) best = bin;
  }
  return best;
}

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

std::string Quote(const std::string& s) {  // SQL literal
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

// A PostgreSQL cluster of its own: initdb, pg_ctl start on 127.0.0.1, trust
// auth. PostgreSQL refuses to run as root, so as root it runs as `postgres`.
class PgCluster {
 public:
  explicit PgCluster(const std::string& dir) : dir_(dir), bin_(PgBinDir()), port_(FreePort()) {}
  ~PgCluster() {
    if (started_) RunShell(As() + bin_ + "/pg_ctl -D " + dir_ + "/pgdata -m immediate stop");
  }
  bool Start(std::string* why) {
    if (bin_.empty()) {
      *why = "no PostgreSQL under /usr/lib/postgresql (tools/setup.sh installs postgresql-15)";
      return false;
    }
    fs::create_directories(dir_ + "/pgdata");
    if (geteuid() == 0) {
      fs::permissions(fs::path(dir_).parent_path(), fs::perms::all, fs::perm_options::add);
      RunShell("chown -R postgres " + dir_);
    }
    CommandResult init = RunShell(As() + bin_ + "/initdb -D " + dir_ +
                                  "/pgdata -U postgres --auth=trust -E UTF8 --no-locale");
    if (init.exit_code != 0) {
      *why = "initdb: " + init.err;
      return false;
    }
    CommandResult start =
        RunShell(As() + bin_ + "/pg_ctl -D " + dir_ + "/pgdata -w -l " + dir_ + "/pg.log -o '-p " +
                 std::to_string(port_) + " -k " + dir_ + " -c listen_addresses=127.0.0.1' start");
    if (start.exit_code != 0) {
      *why = "pg_ctl start: " + start.err + start.out;
      return false;
    }
    started_ = true;
    return true;
  }
  // psql on the cluster, run as the current user (\copy writes its files).
  CommandResult Psql(const std::string& args, const std::string& cwd = ".") {
    return RunShell("cd " + cwd + " && " + bin_ +
                    "/psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p " + std::to_string(port_) +
                    " -U postgres -d postgres " + args);
  }

 private:
  std::string As() const { return geteuid() == 0 ? "runuser -u postgres -- " : ""; }
  std::string dir_, bin_;
  int port_;
  bool started_ = false;
};

struct PgRow {
  std::string key, user, type, metadata;
  int64_t amount = 0;
  std::optional<int64_t> running;
  bool active = true;
  TimeUs time = 0;
};

// The seeds' history for 53 users: every type, pending ones, unicode
// metadata and ids, balances driven to both int limits, refunds of top-ups
// and refunds naming none, a key over 128 bytes, a non-object metadata.
class History {
 public:
  History() {
    for (int i = 0; i < 50; ++i) users_.push_back("u" + std::to_string(100 + i));
    Limits();
    for (int i = 0; i < 3000; ++i) Step(users_[rng_() % 50]);  // not the limit users
    users_.push_back("用户-ü");
    Add("用户-ü", 900, "TOP_UP", true, R"({"note": "充值 ✓"})");
    Add("用户-ü", -40, "USAGE", true, R"({"graph_exec_id": "g-ü", "reason": "Ran block 🤖"})");
    Add("u100", 7, "GRANT", true, R"({"reason": "long key"})", std::string(200, 'k'));
    Add("u101", -3, "USAGE", true, R"("just text")");
  }
  const std::vector<PgRow>& rows() const { return rows_; }
  const std::vector<std::string>& users() const { return users_; }
  int64_t balance(const std::string& u) { return balance_[u]; }

 private:
  void Limits() {
    users_.push_back("max-user");
    Add("max-user", 2000000000, "TOP_UP", true, "{}");
    Add("max-user", 2000000000, "TOP_UP", true, "{}");  // clamps at 2147483647
    Add("max-user", -7, "USAGE", true, "{}");
    users_.push_back("min-user");
    Add("min-user", -2000000000, "USAGE", true, "{}");
    Add("min-user", -2000000000, "USAGE", true, "{}");  // clamps at -2147483648
    Add("min-user", 8, "GRANT", true, "{}");
  }
  void Step(const std::string& u) {
    int r = static_cast<int>(rng_() % 100);
    int64_t n = static_cast<int64_t>(rng_() % 10000);
    if (r < 20) {
      std::string key =
          Add(u, 100 + n, "TOP_UP", true, R"({"source": "stripe", "note": "café ☕"})");
      top_ups_[u].push_back({key, 100 + n});
    } else if (r < 25) {
      Add(u, 100 + n % 5000, "TOP_UP", false, R"({"checkout": "pending"})");
    } else if (r < 32) {
      Add(u, 1 + n % 500, "GRANT", true, R"({"reason": "onboarding 🎉"})");
    } else if (r < 34) {
      Add(u, 1 + n % 500, "GRANT", false, R"({"reason": "promo, later"})");
    } else if (r < 85) {
      Add(u, -(1 + n % 300), "USAGE", true,
          R"({"graph_exec_id": "g)" + std::to_string(n % 40) +
              R"(", "node_id": "n1", "reason": "Ran block 块 \"quoted\""})");
    } else if (r < 92 && !top_ups_[u].empty()) {
      auto& [key, left] = top_ups_[u][rng_() % top_ups_[u].size()];
      if (left == 0) return;
      int64_t amount = 1 + n % left;
      left -= amount;
      Add(u, -amount, "REFUND", true,
          R"({"payment_intent": ")" + key + R"(", "status": "succeeded"})");
    } else if (r < 95) {
      Add(u, -(1 + n % 200), "REFUND", true, R"({"reason": "chargeback, no payment named"})");
    } else if (r < 97) {
      Add(u, -5, "USAGE", false, "{}");  // inactive usage: moved nothing
    } else {
      Add(u, 0, "CARD_CHECK", true, "{}");
    }
  }
  std::string Add(const std::string& u, int64_t amount, const std::string& type, bool active,
                  const std::string& metadata, std::string key = {}) {
    if (key.empty()) key = "tx_" + std::to_string(rows_.size());
    PgRow row{key, u, type, metadata, amount, std::nullopt, active, time_};
    time_ += 1000 + static_cast<TimeUs>(rng_() % 5000) * 1000;  // whole milliseconds apart
    if (active) {
      balance_[u] = std::clamp<int64_t>(balance_[u] + amount, -2147483648LL, 2147483647LL);
      row.running = balance_[u];
    }
    rows_.push_back(row);
    return key;
  }
  std::mt19937_64 rng_{42};
  TimeUs time_ = 1735689600000000;  // 2025-01-01T00:00:00Z
  std::vector<PgRow> rows_;
  std::vector<std::string> users_;
  std::map<std::string, int64_t> balance_;
  std::map<std::string, std::vector<std::pair<std::string, int64_t>>> top_ups_;
};

std::string PgTime(TimeUs t) {    // "2025-01-01 00:00:00.123", as timestamp(3) takes it
  std::string s = FormatTime(t);  // 2025-01-01T00:00:00.123000Z
  return s.substr(0, 10) + " " + s.substr(11, 12);
}

std::string Minified(const std::string& json) {
  std::string out;
  EXPECT_FALSE(NormalizeJsonObject(json, "metadata", SIZE_MAX, &out).has_value()) << json;
  return out;
}

TEST(PgImport, MigratesTheSeedsTablesExactlyAndIdempotently) {
  TempDir tmp;
  PgCluster pg(tmp.Sub("pg"));
  std::string why;
  ASSERT_TRUE(pg.Start(&why)) << why;
  std::string source = std::getenv("LEDGER_SOURCE_ROOT") ? std::getenv("LEDGER_SOURCE_ROOT") : ".";
  CommandResult schema = pg.Psql("-f " + source + "/tools/pg/schema.sql");
  ASSERT_EQ(schema.exit_code, 0) << schema.err;

  History h;
  {
    std::ofstream sql(tmp.Sub("fill.sql"));
    sql << "BEGIN;\n";
    std::vector<std::string> users = h.users();
    users.push_back("only-balance");
    for (const std::string& u : users) {
      sql << "INSERT INTO \"User\" (id, email) VALUES (" << Quote(u) << ", " << Quote(u + "@x.io")
          << ");\n";
    }
    for (const PgRow& r : h.rows()) {
      sql << "INSERT INTO \"CreditTransaction\" VALUES (" << Quote(r.key) << ", "
          << Quote(PgTime(r.time)) << ", " << Quote(r.user) << ", " << r.amount << ", "
          << Quote(r.type) << ", " << (r.running ? std::to_string(*r.running) : "NULL") << ", "
          << (r.active ? "true" : "false") << ", " << Quote(r.metadata) << ");\n";
    }
    // UserBalance as PostgreSQL kept it: two users drifted from their
    // transactions, one has a balance and no transactions.
    for (const std::string& u : h.users()) {
      int64_t b = h.balance(u) + (u == "u101" ? 37 : u == "u102" ? -5 : 0);
      sql << "INSERT INTO \"UserBalance\" VALUES (" << Quote(u) << ", " << b << ");\n";
    }
    sql << "INSERT INTO \"UserBalance\" VALUES ('only-balance', 500);\nCOMMIT;\n";
  }
  CommandResult fill = pg.Psql("-f " + tmp.Sub("fill.sql"));
  ASSERT_EQ(fill.exit_code, 0) << fill.err;

  // Export exactly as the README says.
  fs::create_directories(tmp.Sub("export"));
  CommandResult exported = pg.Psql("-f " + source + "/tools/pg/export.sql", tmp.Sub("export"));
  ASSERT_EQ(exported.exit_code, 0) << exported.err;

  std::string data = tmp.Sub("ledger");
  CommandResult first =
      RunTool("LEDGER_IMPORT", "--data " + data + " --from " + tmp.Sub("export") + " --json");
  ASSERT_EQ(first.exit_code, 0) << first.err;
  Json report(first.out);
  size_t inactive_usage = std::count_if(h.rows().begin(), h.rows().end(), [](const PgRow& r) {
    return !r.active && r.type == "USAGE";
  });
  EXPECT_EQ(report.Int("/rows"), static_cast<int64_t>(h.rows().size()));
  EXPECT_EQ(report.Int("/appended"), static_cast<int64_t>(h.rows().size() - inactive_usage));
  EXPECT_EQ(report.Int("/skipped"), static_cast<int64_t>(inactive_usage));
  EXPECT_EQ(report.Int("/rekeyed"), 1);
  EXPECT_GT(report.Int("/as_adjust"), 50);  // refunds naming no top-up, card checks
  EXPECT_GT(report.Int("/running_checked"), 2000);
  EXPECT_EQ(report.Int("/running_mismatch"), 0) << first.out;
  EXPECT_EQ(report.Int("/users_adjusted"), 3) << first.out;  // u101, u102, only-balance
  EXPECT_EQ(report.Int("/users_not_in_user_table"), 0);

  // Every balance equals PostgreSQL's UserBalance, every row is there with its
  // running balance, state, time and metadata as PostgreSQL exported them.
  CommandResult balances =
      pg.Psql("--csv -c 'SELECT \"userId\", \"balance\" FROM \"UserBalance\"'");
  CommandResult rows = pg.Psql(
      "--csv -c 'SELECT \"userId\", \"transactionKey\", \"isActive\", \"runningBalance\", "
      "\"type\", \"metadata\", \"createdAt\" FROM \"CreditTransaction\"'");
  ASSERT_EQ(rows.exit_code, 0) << rows.err;
  uint64_t hash_after_first = 0;
  Seq last_seq_after_first = 0;
  {
    std::unique_ptr<LogStore> store;
    ASSERT_TRUE(LogStore::Open(StoreOptions{data, false, /*read_only=*/true}, &store).ok());
    std::unique_ptr<Projection> projection;
    RecoveryReport rr;
    ASSERT_TRUE(Recover(store->db(), store->log_cf(), store->snapshots_cf(), store->StoredBounds(),
                        ReplayOptions{}, &projection, &rr)
                    .ok());
    store->SetUserHeads(HeadsOf(*projection));
    CsvReader bcsv(balances.out);
    CsvRow f;
    bcsv.Next(&f);
    size_t users = 0;
    while (bcsv.Next(&f)) {
      const UserState* s = projection->Find(*f[0]);
      ASSERT_NE(s, nullptr) << *f[0];
      EXPECT_EQ(s->balance, std::stoll(*f[1])) << *f[0];
      ++users;
    }
    EXPECT_EQ(users, h.users().size() + 1);
    EXPECT_EQ(projection->Find("max-user")->balance, 2147483640);
    EXPECT_EQ(projection->Find("min-user")->balance, -2147483640);

    CsvReader tcsv(rows.out);
    tcsv.Next(&f);
    size_t checked = 0;
    while (tcsv.Next(&f)) {
      const std::string& user = *f[0];
      std::string key = f[1]->size() > kKeyBytesMax ? "" : *f[1];
      bool active = *f[2] == "t";
      std::string type = *f[4];
      if (!active && type == "USAGE") continue;  // skipped: moved nothing
      if (key.empty()) {
        std::vector<Seq> all = UserSeqs(store.get(), user, 0, 1000);
        Event e;
        bool found = false;
        for (Seq seq : all) {
          ASSERT_TRUE(store->ReadEvent(seq, &e).ok());
          found = found || e.key.rfind("pgkey:", 0) == 0;
        }
        EXPECT_TRUE(found) << "the long key's row";
        continue;
      }
      auto entry = store->GetKey(user, key);
      ASSERT_TRUE(entry.has_value()) << user << " " << key;
      Event e;
      ASSERT_TRUE(store->ReadEvent(entry->seq, &e).ok());
      EXPECT_EQ(e.active, active) << key;
      if (f[3]) {
        EXPECT_EQ(e.running_balance, std::stoll(*f[3])) << key;
      }
      EXPECT_EQ(e.time_us, *ParsePgTime(*f[6])) << key;
      std::string pg_meta = Minified(f[5]->front() == '{' ? *f[5] : "{\"value\":" + *f[5] + "}");
      // A refund naming its top-up stays a refund of that top-up.
      if (type == "REFUND" && f[5]->find("payment_intent") != std::string::npos) {
        EXPECT_EQ(e.kind, Kind::kRefund) << key;
      }
      if (e.kind == Kind::kAdjust) {
        EXPECT_NE(e.metadata.find(pg_meta), std::string::npos) << e.metadata;
        EXPECT_NE(e.metadata.find("\"type\":\"" + type + "\""), std::string::npos);
      } else {
        EXPECT_EQ(e.metadata, pg_meta) << key;
      }
      ++checked;
    }
    EXPECT_EQ(checked, h.rows().size() - inactive_usage - 1);
    hash_after_first = projection->state_hash();
    last_seq_after_first = projection->last_seq();
  }

  // The ledger's own audit passes over the imported log.
  CommandResult audit = RunTool("LEDGER_REPLAY", "verify --data " + data);
  EXPECT_EQ(audit.exit_code, 0) << audit.out << audit.err;

  // Again: nothing appended, nothing adjusted, the same state.
  CommandResult second =
      RunTool("LEDGER_IMPORT", "--data " + data + " --from " + tmp.Sub("export") + " --json");
  ASSERT_EQ(second.exit_code, 0) << second.err;
  Json again(second.out);
  EXPECT_EQ(again.Int("/appended"), 0);
  EXPECT_EQ(again.Int("/users_adjusted"), 0);
  EXPECT_EQ(again.Int("/already"), static_cast<int64_t>(h.rows().size() - inactive_usage));
  CommandResult stats = RunTool("LEDGER_READ", "stats --json --data " + data);
  Json st(stats.out);
  EXPECT_EQ(static_cast<Seq>(st.Int("/last_seq")), last_seq_after_first);
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(hash_after_first));
  EXPECT_EQ(st.Str("/state_hash"), hex);
}

TEST(PgImport, BadInputIsAClearErrorAndWritesNothing) {
  TempDir tmp;
  std::ofstream(tmp.Sub("t.csv")) << "transactionKey,userId\nk,u\n";
  std::ofstream(tmp.Sub("b.csv")) << "userId,balance\n";
  CommandResult r =
      RunTool("LEDGER_IMPORT", "--data " + tmp.Sub("d") + " --transactions " + tmp.Sub("t.csv") +
                                   " --balances " + tmp.Sub("b.csv"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("no column amount"), std::string::npos) << r.err;
  EXPECT_EQ(RunTool("LEDGER_IMPORT", "--data " + tmp.Sub("d")).exit_code, 2);
  EXPECT_EQ(RunTool("LEDGER_IMPORT", "--data " + tmp.Sub("d") + " --from /nonexistent").exit_code,
            2);
}

}  // namespace
}  // namespace ledger::testing
