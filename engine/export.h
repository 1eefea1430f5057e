// Whole-projection views: every user's balance (export) and the top users by
// balance. Shared by the server, ledger-read and ledger-replay.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "projections/projection.h"

namespace ledger {

enum class ExportFormat { kJson, kCsv, kNdjson };
std::optional<ExportFormat> ExportFormatFromName(std::string_view name);

// One row per user (user_id, balance, updated_at), sorted by user id so the
// same state always gives the same bytes. JSON wraps the rows with the seq
// and state hash: {"seq":N,"state_hash":"...","users":[...]}.
std::string ExportUsers(const Projection& projection, ExportFormat format);

// The same in two steps, so that a live projection is locked only for the
// copy: what an export shows of every user, as of one seq.
struct ExportRows {
  struct Row {
    size_t id_at = 0;  // the user id: ids[id_at, id_at + id_bytes)
    uint32_t id_bytes = 0;
    Amount balance = 0;
    TimeUs updated_at = 0;
  };
  Seq seq = 0;
  uint64_t state_hash = 0;
  std::string ids;  // every user id, back to back
  std::vector<Row> rows;
};
ExportRows CopyForExport(const Projection& projection);
// Sorts and formats what CopyForExport took (no lock needed).
std::string FormatExport(ExportRows rows, ExportFormat format);

// {"users":[{"user_id","balance","updated_at"}...]}, highest balance first
// (ties by user id), at most `limit`.
std::string TopUsersJson(const Projection& projection, size_t limit);

std::string HexHash(uint64_t hash);

// {"events","users","last_seq","last_snapshot_seq","state_hash"}, as
// GET /v1/stats answers.
std::string StatsJson(uint64_t events, uint64_t users, Seq last_seq, Seq last_snapshot_seq,
                      uint64_t state_hash);

}  // namespace ledger
