#include "engine/export.h"

#include <algorithm>
#include <cstdio>
#include <vector>

#include "engine/json_writer.h"
#include "engine/time_format.h"

namespace ledger {

namespace {

std::string CsvField(std::string_view s) {
  if (s.find_first_of(",\"\n\r") == std::string_view::npos) return std::string(s);
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  return out + "\"";
}

void AppendUserJson(std::string_view user_id, Amount balance, TimeUs updated_at, std::string* out) {
  JsonWriter w(out);
  w.BeginObject().Key("user_id").String(user_id).Key("balance").Int(balance);
  w.Key("updated_at");
  if (updated_at != 0) {
    w.Time(updated_at);
  } else {
    w.Null();
  }
  w.EndObject();
}

void AppendUserJson(const UserEntry& u, std::string* out) {
  AppendUserJson(u.user_id, u.state.balance, u.state.updated_at, out);
}

}  // namespace

std::optional<ExportFormat> ExportFormatFromName(std::string_view name) {
  if (name == "json") return ExportFormat::kJson;
  if (name == "csv") return ExportFormat::kCsv;
  if (name == "ndjson") return ExportFormat::kNdjson;
  return std::nullopt;
}

std::string HexHash(uint64_t hash) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(hash));
  return buf;
}

std::string ExportUsers(const Projection& projection, ExportFormat format) {
  return FormatExport(CopyForExport(projection), format);
}

ExportRows CopyForExport(const Projection& projection) {
  ExportRows out;
  out.seq = projection.last_seq();
  out.state_hash = projection.state_hash();
  out.rows.reserve(projection.user_count());
  for (const UserEntry& u : projection.users()) {
    out.rows.push_back(ExportRows::Row{out.ids.size(), static_cast<uint32_t>(u.user_id.size()),
                                       u.state.balance, u.state.updated_at});
    out.ids += u.user_id;
  }
  return out;
}

std::string FormatExport(ExportRows rows, ExportFormat format) {
  const std::string& ids = rows.ids;
  auto id = [&ids](const ExportRows::Row& r) {
    return std::string_view(ids).substr(r.id_at, r.id_bytes);
  };
  std::sort(rows.rows.begin(), rows.rows.end(),
            [&](const ExportRows::Row& a, const ExportRows::Row& b) { return id(a) < id(b); });
  std::string out;
  out.reserve(rows.rows.size() * 64);
  auto append_json = [&](const ExportRows::Row& r) {
    AppendUserJson(id(r), r.balance, r.updated_at, &out);
  };
  switch (format) {
    case ExportFormat::kCsv:
      out = "user_id,balance,updated_at\n";
      for (const ExportRows::Row& r : rows.rows) {
        out += CsvField(id(r)) + "," + std::to_string(r.balance) + "," +
               (r.updated_at ? FormatTime(r.updated_at) : std::string()) + "\n";
      }
      break;
    case ExportFormat::kNdjson:
      for (const ExportRows::Row& r : rows.rows) {
        append_json(r);
        out.push_back('\n');
      }
      break;
    case ExportFormat::kJson:
      out = "{\"seq\":" + std::to_string(rows.seq) + ",\"state_hash\":\"" +
            HexHash(rows.state_hash) + "\",\"users\":[";
      for (const ExportRows::Row& r : rows.rows) {
        if (&r != &rows.rows.front()) out.push_back(',');
        append_json(r);
      }
      out += "]}\n";
      break;
  }
  return out;
}

std::string TopUsersJson(const Projection& projection, size_t limit) {
  std::vector<const UserEntry*> users;
  users.reserve(projection.user_count());
  for (const UserEntry& u : projection.users()) users.push_back(&u);
  auto higher = [](const UserEntry* a, const UserEntry* b) {
    return a->state.balance != b->state.balance ? a->state.balance > b->state.balance
                                                : a->user_id < b->user_id;
  };
  size_t n = std::min(limit, users.size());
  std::partial_sort(users.begin(), users.begin() + static_cast<long>(n), users.end(), higher);
  std::string out = "{\"users\":[";
  for (size_t i = 0; i < n; ++i) {
    if (i) out.push_back(',');
    AppendUserJson(*users[i], &out);
  }
  return out + "]}";
}

std::string StatsJson(uint64_t events, uint64_t users, Seq last_seq, Seq last_snapshot_seq,
                      uint64_t state_hash) {
  std::string body;
  JsonWriter w(&body);
  w.BeginObject().Key("events").Uint(events).Key("users").Uint(users);
  w.Key("last_seq").Uint(last_seq).Key("last_snapshot_seq").Uint(last_snapshot_seq);
  w.Key("state_hash").String(HexHash(state_hash)).EndObject();
  return body;
}

}  // namespace ledger
