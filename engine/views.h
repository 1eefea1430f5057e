// Read views over the log: a user's transactions, refund requests and
// disputes, as the API shows them. Everything here reads committed data only.
#pragma once

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
};
inline constexpr size_t kHistoryLimitMax = 1000;
// Events a single history request may examine while filtering; bounds the
// work one request can cause on a long history.
inline constexpr size_t kHistoryScanMax = 100000;

struct HistoryPage {
  std::vector<StoredTx> items;
  std::optional<Seq> next_before_seq;
};

Status ReadHistory(LogStore* store, std::string_view user_id, const HistoryQuery& query,
                   HistoryPage* page);

// The transaction as the API shows it: a pending event that was activated
// shows as active, with the activation's running balance, metadata and key.
void AppendTransactionJson(const StoredTx& tx, std::string* out);

// {"refund_requests": [...]} / {"disputes": [...]}, newest first.
Status RefundRequestsJson(LogStore* store, std::string_view user_id, std::string* out);
Status DisputesJson(LogStore* store, std::string_view user_id, std::string* out);

// Dispute evidence: the top-up and the user's recent history.
std::string EvidenceJson(LogStore* store, std::string_view user_id, Seq payment_seq);

}  // namespace ledger
