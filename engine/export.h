// Whole-projection views: every user's balance (export) and the top users by
// balance. Shared by the server, ledger-read and ledger-replay.
#pragma once

#include <optional>
#include <string>

#include "projections/projection.h"

namespace ledger {

enum class ExportFormat { kJson, kCsv, kNdjson };
std::optional<ExportFormat> ExportFormatFromName(std::string_view name);

// One row per user (user_id, balance, updated_at), sorted by user id so the
// same state always gives the same bytes. JSON wraps the rows with the seq
// and state hash: {"seq":N,"state_hash":"...","users":[...]}.
std::string ExportUsers(const Projection& projection, ExportFormat format);

// {"users":[{"user_id","balance","updated_at"}...]}, highest balance first
// (ties by user id), at most `limit`.
std::string TopUsersJson(const Projection& projection, size_t limit);

std::string HexHash(uint64_t hash);

// {"events","users","last_seq","last_snapshot_seq","state_hash"}, as
// GET /v1/stats answers.
std::string StatsJson(uint64_t events, uint64_t users, Seq last_seq, Seq last_snapshot_seq,
                      uint64_t state_hash);

}  // namespace ledger
