#include "engine/export.h"

#include <algorithm>
#include <cstdio>
#include <vector>

#include "engine/json_writer.h"
#include "engine/time_format.h"

namespace ledger {

namespace {

std::string CsvField(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  return out + "\"";
}

void AppendUserJson(const UserEntry& u, std::string* out) {
  JsonWriter w(out);
  w.BeginObject().Key("user_id").String(u.user_id).Key("balance").Int(u.state.balance);
  w.Key("updated_at");
  if (u.state.updated_at != 0) {
    w.Time(u.state.updated_at);
  } else {
    w.Null();
  }
  w.EndObject();
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
  std::vector<const UserEntry*> users;
  users.reserve(projection.user_count());
  for (const UserEntry& u : projection.users()) users.push_back(&u);
  std::sort(users.begin(), users.end(),
            [](const UserEntry* a, const UserEntry* b) { return a->user_id < b->user_id; });
  std::string out;
  out.reserve(users.size() * 64);
  switch (format) {
    case ExportFormat::kCsv:
      out = "user_id,balance,updated_at\n";
      for (const UserEntry* u : users) {
        out += CsvField(u->user_id) + "," + std::to_string(u->state.balance) + "," +
               (u->state.updated_at ? FormatTime(u->state.updated_at) : std::string()) + "\n";
      }
      break;
    case ExportFormat::kNdjson:
      for (const UserEntry* u : users) {
        AppendUserJson(*u, &out);
        out.push_back('\n');
      }
      break;
    case ExportFormat::kJson:
      out = "{\"seq\":" + std::to_string(projection.last_seq()) + ",\"state_hash\":\"" +
            HexHash(projection.state_hash()) + "\",\"users\":[";
      for (size_t i = 0; i < users.size(); ++i) {
        if (i) out.push_back(',');
        AppendUserJson(*users[i], &out);
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
