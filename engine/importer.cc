#include "engine/importer.h"

#include <simdjson.h>
#include <xxhash.h>

#include <algorithm>
#include <map>
#include <set>
#include <unordered_map>

#include "engine/csv.h"
#include "engine/export.h"
#include "engine/json_command.h"
#include "engine/json_writer.h"
#include "engine/text.h"
#include "engine/time_format.h"

namespace ledger {

std::optional<TimeUs> ParsePgTime(std::string_view text) {
  std::string s(text);
  if (s.size() < 19) return std::nullopt;
  // After the seconds (and fraction): nothing (UTC), Z, or an offset.
  size_t end = 19;
  if (end < s.size() && s[end] == '.') {
    ++end;
    while (end < s.size() && s[end] >= '0' && s[end] <= '9') ++end;
  }
  std::string zone = s.substr(end);
  s.resize(end);
  if (zone.empty() || zone == "Z" || zone == "z") {
    s += "Z";
  } else if ((zone[0] == '+' || zone[0] == '-') && zone.size() == 3) {
    s += zone + ":00";  // "+05"
  } else if ((zone[0] == '+' || zone[0] == '-') && zone.size() == 5 && zone[3] != ':') {
    s += zone.substr(0, 3) + ":" + zone.substr(3);  // "+0530"
  } else {
    s += zone;
  }
  return ParseTime(s);
}

namespace {

constexpr size_t kBatchMax = 4096;
constexpr size_t kNotesPerKind = 10;

// A CSV export read whole, with its header checked for the columns needed.
class CsvFile {
 public:
  Status Open(const std::string& path, const std::vector<const char*>& required) {
    path_ = path;
    Status s = ReadWholeFile(path, &text_);
    if (!s.ok()) return s;
    reader_.emplace(text_);
    CsvRow header;
    if (!reader_->Next(&header)) return Status::Error(path + ": no header line");
    header_.emplace(header);
    for (const char* name : required) {
      if (!header_->Find(name)) return Status::Error(path + ": no column " + name);
    }
    return Status::Ok();
  }
  std::optional<size_t> Column(std::string_view name) const { return header_->Find(name); }
  bool Next(CsvRow* row) { return reader_->Next(row); }
  size_t line() const { return reader_->line(); }
  // After the last row: whether the file ended cleanly.
  Status Finish() const {
    if (reader_->error().empty()) return Status::Ok();
    return Status::Error(path_ + ": " + reader_->error());
  }

 private:
  std::string path_;
  std::string text_;
  std::optional<CsvReader> reader_;
  std::optional<CsvHeader> header_;
};

std::optional<int64_t> ParseInt64(const CsvField& f) {
  if (!f || f->empty() || f->size() > 20) return std::nullopt;
  size_t i = (*f)[0] == '-' ? 1 : 0;
  if (i == f->size()) return std::nullopt;
  int64_t v = 0;
  for (; i < f->size(); ++i) {
    char c = (*f)[i];
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return (*f)[0] == '-' ? -v : v;
}

std::optional<bool> ParseBool(const CsvField& f) {
  if (!f) return std::nullopt;
  if (*f == "t" || *f == "true" || *f == "TRUE" || *f == "1") return true;
  if (*f == "f" || *f == "false" || *f == "FALSE" || *f == "0") return false;
  return std::nullopt;
}

struct Row {
  size_t line = 0;
  std::string key;
  std::string user;
  Amount amount = 0;
  std::string type;
  std::optional<Amount> running;
  std::string metadata;  // minified JSON (any JSON value); "" for NULL
  bool active = true;
  TimeUs time = 0;
};

// The row's metadata as a JSON object: PostgreSQL's JSON as is when it is an
// object, otherwise kept under "value" (or, if not JSON at all, as "text").
std::string MetadataObject(const std::string& raw) {
  if (raw.empty()) return "{}";
  std::string out;
  if (!NormalizeJsonObject(raw, "metadata", SIZE_MAX, &out)) return out;
  if (!NormalizeJsonObject("{\"value\":" + raw + "}", "metadata", SIZE_MAX, &out)) return out;
  JsonWriter w(&out);
  out.clear();
  w.BeginObject().Key("text").String(raw).EndObject();
  return out;
}

class Importer {
 public:
  Importer(Ledger* ledger, ImportReport* report)
      : ledger_(ledger), store_(ledger->store()), r_(report) {}

  Status ReadTransactions(const std::string& path, std::vector<Row>* rows) {
    const std::vector<const char*> columns = {"transactionKey", "userId",   "amount",
                                              "type",           "isActive", "createdAt"};
    CsvFile csv;
    Status s = csv.Open(path, columns);
    if (!s.ok()) return s;
    std::vector<size_t> col;
    for (const char* name : columns) col.push_back(*csv.Column(name));
    auto running_col = csv.Column("runningBalance");
    auto metadata_col = csv.Column("metadata");
    CsvRow f;
    while (csv.Next(&f)) {
      auto field = [&](std::optional<size_t> i) -> const CsvField& {
        static const CsvField kNull;
        return i && *i < f.size() ? f[*i] : kNull;
      };
      Row row;
      row.line = csv.line();
      row.key = field(col[0]).value_or("");
      row.user = field(col[1]).value_or("");
      auto amount = ParseInt64(field(col[2]));
      row.type = field(col[3]).value_or("");
      auto active = ParseBool(field(col[4]));
      auto time = field(col[5]) ? ParsePgTime(*field(col[5])) : std::nullopt;
      if (!amount || !active || !time || row.user.empty()) {
        Note("unreadable", "line " + std::to_string(row.line) +
                               ": amount, isActive, createdAt or userId not readable");
        ++r_->rows;
        ++r_->skipped;
        continue;
      }
      row.amount = *amount;
      row.active = *active;
      row.time = *time;
      row.running = ParseInt64(field(running_col));
      row.metadata = field(metadata_col).value_or("");
      rows->push_back(std::move(row));
    }
    if (Status done = csv.Finish(); !done.ok()) return done;
    // createdAt order; rows of the same time keep the export's order.
    std::stable_sort(rows->begin(), rows->end(),
                     [](const Row& a, const Row& b) { return a.time < b.time; });
    return Status::Ok();
  }

  void Import(const Row& row) {
    ++r_->rows;
    users_.insert(row.user);
    if (!IsValidId(row.user, kUserIdBytesMax)) {
      ++r_->skipped;
      Note("user", "line " + std::to_string(row.line) + ": user id not valid: " + row.user);
      return;
    }
    std::string key = row.key;
    if (key.empty() || !IsValidId(key, kKeyBytesMax)) {
      key = "pgkey:" + HexHash(XXH3_64bits(row.key.data(), row.key.size()));
      ++r_->rekeyed;
      Note("rekeyed", "line " + std::to_string(row.line) + ": key stored as " + key);
    }
    std::string metadata = MetadataObject(row.metadata);
    if (auto found = store_->GetKey(row.user, key)) {
      ++r_->already;
      Event e;
      if (row.active && found->activation_seq == 0 && store_->ReadEvent(found->seq, &e).ok() &&
          !e.active && (e.kind == Kind::kTopUp || e.kind == Kind::kGrant)) {
        Command act = Base(row, key, metadata);
        act.kind = Kind::kActivate;
        ++r_->activated;
        Push(row, std::move(act), /*as_adjust=*/false);
      }
      return;
    }
    Command c = Base(row, key, metadata);
    c.has_amount = true;
    bool positive = row.amount > 0;
    bool negative = row.amount < 0;
    if ((row.type == "TOP_UP" || row.type == "CARD_CHECK") && positive) {
      std::string owner = PaymentOwner(key);
      if (!owner.empty() && owner != row.user) {
        return Fallback(row, key, metadata, "payment id " + key + " is " + owner + "'s top-up");
      }
      top_ups_[key] = row.user;
      c.kind = Kind::kTopUp;
      c.amount = row.amount;
      c.pending = !row.active;
      return Push(row, std::move(c), false);
    }
    if (row.type == "GRANT" && positive) {
      c.kind = Kind::kGrant;
      c.amount = row.amount;
      c.pending = !row.active;
      return Push(row, std::move(c), false);
    }
    if (!row.active) {
      ++r_->skipped;
      Note("inactive", "line " + std::to_string(row.line) + ": inactive " + row.type +
                           " moved nothing and cannot be pending here: skipped");
      return;
    }
    if (row.type == "USAGE" && negative) {
      c.kind = Kind::kUsage;
      c.amount = -row.amount;
      c.allow_negative = true;
      return Push(row, std::move(c), false);
    }
    if (row.type == "REFUND" && negative) {
      std::string payment = RefundedPayment(metadata);
      if (payment.empty() || PaymentOwner(payment) != row.user) {
        return Fallback(row, key, metadata, "refund names no top-up of the user");
      }
      // A refund may be refused (more than the top-up): decide it alone, in order.
      Flush();
      c.kind = Kind::kRefund;
      c.amount = -row.amount;
      c.payment_key = payment;
      Outcome o = Execute(c);
      if (o.ok()) return Account(row, o, false);
      return Fallback(row, key, metadata,
                      "refund refused (" + std::string(ErrorCodeName(o.code)) + ")");
    }
    Fallback(row, key, metadata, row.type + " of " + std::to_string(row.amount));
  }

  void Flush() {
    if (batch_.empty()) return;
    std::vector<Command> commands;
    commands.reserve(batch_.size());
    for (auto& p : batch_) commands.push_back(std::move(p.command));
    std::vector<Outcome> outs = ledger_->ExecuteBatch(std::move(commands));
    for (size_t i = 0; i < outs.size(); ++i) Account(*batch_[i].row, outs[i], batch_[i].as_adjust);
    batch_.clear();
  }

  Status CheckBalances(const std::string& path) {
    CsvFile csv;
    Status s = csv.Open(path, {"userId", "balance"});
    if (!s.ok()) return s;
    auto user_col = csv.Column("userId");
    auto balance_col = csv.Column("balance");
    CsvRow f;
    while (csv.Next(&f)) {
      ++r_->balance_rows;
      std::string user = *user_col < f.size() ? f[*user_col].value_or("") : "";
      auto want = ParseInt64(*balance_col < f.size() ? f[*balance_col] : std::nullopt);
      users_.insert(user);
      if (!want || !IsValidId(user, kUserIdBytesMax)) {
        Note("balance", "line " + std::to_string(csv.line()) + ": not a readable balance row");
        continue;
      }
      Amount have = ledger_->PeekBalance(user).balance;
      if (have == *want) continue;
      Command c;
      c.kind = Kind::kAdjust;
      c.user_id = user;
      c.key = "migration:" + std::to_string(have) + "->" + std::to_string(*want);
      c.has_balance = true;
      c.balance = *want;
      c.has_metadata = true;
      JsonWriter w(&c.metadata);
      c.metadata.clear();
      w.BeginObject().Key("reason").String("migration");
      w.Key("ledger_balance").Int(have).Key("user_balance").Int(*want).EndObject();
      Outcome o = ledger_->Execute(c);
      if (!o.ok()) {
        Note("balance", user + ": adjust to " + std::to_string(*want) + " refused: " + o.message);
        continue;
      }
      ++r_->users_adjusted;
      Note("adjusted", user + ": transactions give " + std::to_string(have) +
                           ", UserBalance says " + std::to_string(*want) + ": adjusted");
    }
    return csv.Finish();
  }

  Status CheckUsers(const std::string& path) {
    CsvFile csv;
    Status s = csv.Open(path, {"id"});
    if (!s.ok()) return s;
    auto id_col = csv.Column("id");
    CsvRow f;
    std::set<std::string> known;
    while (csv.Next(&f)) {
      if (*id_col < f.size() && f[*id_col]) known.insert(*f[*id_col]);
    }
    if (Status done = csv.Finish(); !done.ok()) return done;
    r_->users_in_user_table = known.size();
    for (const std::string& u : users_) {
      if (known.count(u)) continue;
      ++r_->users_not_in_user_table;
      Note("users", "user " + u + " has rows but no User row");
    }
    return Status::Ok();
  }

 private:
  struct Planned {
    const Row* row;
    Command command;
    bool as_adjust;
  };

  static Command Base(const Row& row, const std::string& key, const std::string& metadata) {
    Command c;
    c.user_id = row.user;
    c.key = key;
    c.has_metadata = true;
    c.metadata = metadata;
    c.has_time = true;
    c.time_us = row.time;
    return c;
  }

  // The user whose top-up holds this payment id ("" when none does).
  std::string PaymentOwner(const std::string& key) {
    auto it = top_ups_.find(key);
    if (it != top_ups_.end()) return it->second;
    auto p = store_->GetPayment(key);
    return p ? p->user_id : std::string();
  }

  // Stripe's refund and dispute objects name the payment as payment_intent.
  // `metadata` is the row's JSON object (MetadataObject).
  static std::string RefundedPayment(const std::string& metadata) {
    if (metadata.find("\"payment_") == std::string::npos) return {};
    thread_local simdjson::dom::parser parser;
    simdjson::dom::element doc;
    if (parser.parse(metadata).get(doc) != simdjson::SUCCESS) return {};
    for (const char* field : {"payment_intent", "payment_key"}) {
      std::string_view value;
      if (doc[field].get(value) == simdjson::SUCCESS) return std::string(value);
    }
    return {};
  }

  // A row the natural mapping cannot carry: an adjust to balance + amount.
  void Fallback(const Row& row, const std::string& key, const std::string& metadata,
                const std::string& why) {
    if (!row.active) {
      ++r_->skipped;
      Note("inactive",
           "line " + std::to_string(row.line) + ": pending " + row.type + " not kept: " + why);
      return;
    }
    Flush();  // the target depends on every earlier row
    const Bounds& b = ledger_->options().bounds;
    Amount now = ledger_->PeekBalance(row.user).balance;
    Command c = Base(row, key, metadata);
    c.kind = Kind::kAdjust;
    c.has_balance = true;
    c.balance = std::clamp(now + row.amount, b.min, b.max);
    c.metadata.clear();
    JsonWriter w(&c.metadata);
    w.BeginObject().Key("reason").String("migration").Key("type").String(row.type);
    w.Key("amount").Int(row.amount).Key("metadata").Raw(metadata).EndObject();
    Note("adjust", "line " + std::to_string(row.line) + " (" + key + "): " + why + ": as adjust");
    Push(row, std::move(c), /*as_adjust=*/true);
  }

  // Validates (client time allowed) and queues. Metadata over the limit is
  // replaced by a note saying so; anything else invalid skips the row.
  void Push(const Row& row, Command c, bool as_adjust) {
    ParseOptions options;
    options.allow_client_time = true;
    auto error = ValidateCommand(c, options);
    if (error && error->field == "metadata") {
      c.metadata = c.kind == Kind::kAdjust
                       ? R"({"reason":"migration","note":"metadata over 64 KiB not kept"})"
                       : R"({"migration_note":"metadata over 64 KiB not kept"})";
      error = ValidateCommand(c, options);
    }
    if (error) {
      ++r_->skipped;
      Note("invalid", "line " + std::to_string(row.line) + ": " + error->message);
      return;
    }
    batch_.push_back(Planned{&row, std::move(c), as_adjust});
    if (batch_.size() >= kBatchMax) Flush();
  }

  Outcome Execute(Command c) {
    ParseOptions options;
    options.allow_client_time = true;
    if (auto error = ValidateCommand(c, options)) {
      return Outcome::Error(ErrorCode::kInvalidRequest, error->message, error->field);
    }
    return ledger_->Execute(std::move(c));
  }

  void Account(const Row& row, const Outcome& o, bool as_adjust) {
    if (!o.ok()) {
      ++r_->skipped;
      Note("refused", "line " + std::to_string(row.line) + " (" + row.key +
                          "): " + std::string(ErrorCodeName(o.code)) + ": " + o.message);
      return;
    }
    if (o.duplicate || o.seq == 0) {
      ++r_->already;
      return;
    }
    ++r_->appended;
    if (as_adjust) ++r_->as_adjust;
    bool pending = !row.active;
    if (!pending && row.running) {
      ++r_->running_checked;
      if (o.balance != *row.running) {
        ++r_->running_mismatch;
        Note("running", "line " + std::to_string(row.line) + " (" + row.key +
                            "): running balance " + std::to_string(*row.running) +
                            " in the export, " + std::to_string(o.balance) + " here");
      }
    }
  }

  void Note(const std::string& kind, std::string text) {
    if (note_counts_[kind]++ < kNotesPerKind) r_->notes.push_back(std::move(text));
  }

  Ledger* ledger_;
  LogStore* store_;
  ImportReport* r_;
  std::vector<Planned> batch_;
  std::unordered_map<std::string, std::string> top_ups_;  // payment id -> user, this run
  std::set<std::string> users_;
  std::map<std::string, size_t> note_counts_;
};

}  // namespace

Status RunImport(Ledger* ledger, const ImportFiles& files, ImportReport* report,
                 const ImportProgress& progress) {
  *report = ImportReport{};
  Importer importer(ledger, report);
  std::vector<Row> rows;
  Status s = importer.ReadTransactions(files.transactions, &rows);
  if (!s.ok()) return s;
  for (size_t i = 0; i < rows.size(); ++i) {
    importer.Import(rows[i]);
    if (progress && (i + 1) % 10000 == 0) progress(i + 1, rows.size());
  }
  importer.Flush();
  if (progress) progress(rows.size(), rows.size());
  if (!files.balances.empty()) {
    s = importer.CheckBalances(files.balances);
    if (!s.ok()) return s;
  }
  if (!files.users.empty()) {
    s = importer.CheckUsers(files.users);
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

std::string ImportReportJson(const ImportReport& r) {
  std::string out;
  JsonWriter w(&out);
  w.BeginObject();
  w.Key("rows").Uint(r.rows).Key("appended").Uint(r.appended).Key("already").Uint(r.already);
  w.Key("activated").Uint(r.activated).Key("as_adjust").Uint(r.as_adjust);
  w.Key("skipped").Uint(r.skipped).Key("rekeyed").Uint(r.rekeyed);
  w.Key("running_checked").Uint(r.running_checked);
  w.Key("running_mismatch").Uint(r.running_mismatch);
  w.Key("balance_rows").Uint(r.balance_rows).Key("users_adjusted").Uint(r.users_adjusted);
  w.Key("users_in_user_table").Uint(r.users_in_user_table);
  w.Key("users_not_in_user_table").Uint(r.users_not_in_user_table);
  w.Key("notes").BeginArray();
  for (const auto& n : r.notes) w.String(n);
  w.EndArray().EndObject();
  return out;
}

}  // namespace ledger
