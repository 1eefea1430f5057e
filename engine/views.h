// Read views over the log: a user's transactions, refund requests and
// disputes, as the API shows them. Everything here reads committed data only.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "engine/decide.h"
#include "engine/log_store.h"

namespace ledger {

struct HistoryQuery {
  size_t limit = 100;
  Seq before_seq = 0;  // 0: from the newest
  std::optional<Kind> kind;
  std::optional<bool> active;
  TimeUs since_us = 0;  // 0: no bound
  TimeUs until_us = 0;  // 0: no bound
  // One line per graph execution: usage events whose metadata names the same
  // `graph_exec_id` are summed into one line (as the seeds' history does).
  bool group_by_graph_exec = false;
};
inline constexpr size_t kHistoryLimitMax = 1000;
// Events a single history request may examine while filtering; bounds the
// work one request can cause on a long history.
inline constexpr size_t kHistoryScanMax = 100000;

// A line standing for several usage events of one graph execution.
struct UsageGroup {
  std::string graph_exec_id;  // empty: the line is a single event
  size_t node_count = 0;
  Amount amount = 0;   // summed, signed as it moved the balance
  Amount applied = 0;  // summed
  TimeUs first_time = 0;
  Seq first_seq = 0;
};

struct HistoryPage {
  std::vector<StoredTx> items;     // each line's newest event
  std::vector<UsageGroup> groups;  // parallel to items
  std::optional<Seq> next_before_seq;
};

// Reads the history parameters (limit, before_seq, type, active, since,
// until, group_by) through `get`, which returns a parameter's value or null.
// Returns the name of the first parameter that is not valid.
std::optional<std::string> ParseHistoryQuery(
    const std::function<const std::string*(std::string_view)>& get, HistoryQuery* query);

Status ReadHistory(LogStore* store, std::string_view user_id, const HistoryQuery& query,
                   HistoryPage* page);

// The transaction as the API shows it: a pending event that was activated
// shows as active, with the activation's running balance, metadata and key.
// With a `group` that names a graph execution: the group's summed amounts
// and its graph_exec_id, node_count, first_seq, first_time, last_time.
void AppendTransactionJson(const StoredTx& tx, std::string* out, const UsageGroup* group = nullptr);

// {"transactions": [...], "next_before_seq": N or null}; grouped lines carry
// graph_exec_id, node_count, first_time, last_time and the summed amounts.
std::string HistoryPageJson(const HistoryPage& page);

// The balance at a point of the log: after the user's last event with
// seq <= at_seq, or with time <= at_us (give one; 0 for the other).
struct BalancePoint {
  bool exists = false;  // false: no event of the user up to that point
  Amount balance = 0;
  TimeUs updated_at = 0;  // the last balance change up to that point
  Seq seq = 0;            // the user's last event up to that point
};
Status ReadBalanceAt(LogStore* store, std::string_view user_id, Seq at_seq, TimeUs at_us,
                     BalancePoint* out);

// {"user_id", "balance", "updated_at", "seq"}, as GET .../balance answers.
std::string BalanceJson(std::string_view user_id, const BalancePoint& point);

// {"refund_requests": [...]} / {"disputes": [...]}, newest first.
Status RefundRequestsJson(LogStore* store, std::string_view user_id, std::string* out);
Status DisputesJson(LogStore* store, std::string_view user_id, std::string* out);

// Dispute evidence: the top-up and the user's recent history.
std::string EvidenceJson(LogStore* store, std::string_view user_id, Seq payment_seq);

}  // namespace ledger
