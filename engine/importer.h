// Migration from the PostgreSQL credit system of the seeds: its tables
// exported as CSV (`\copy`, see README) become events of this ledger.
//
// Each `CreditTransaction` row is appended with its original key, time and
// metadata, in `createdAt` order:
//   TOP_UP / CARD_CHECK, amount > 0   top_up (pending when inactive)
//   GRANT, amount > 0                 grant (pending when inactive)
//   USAGE, amount < 0                 usage of -amount, allow_negative
//   REFUND, amount < 0                refund of the top-up its metadata names
//                                     (`payment_intent` or `payment_key`)
//   anything else that moved the balance (a refund naming no top-up of the
//   user, a zero or wrong-signed amount, a rejected refund, a payment id
//   another user's top-up holds): an `adjust` to balance + amount, its
//   metadata {"reason":"migration","type","amount","metadata"} keeping the row.
// Inactive rows other than top-ups and grants moved nothing and are skipped
// (counted). Rows already in the ledger are not sent again; a top-up pending
// here and active in the export is activated. At the end every user's balance
// is compared with their `UserBalance` row; a difference is reported and set
// right by an `adjust` with the reason `migration`. Running it again adds nothing.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "engine/ledger.h"

namespace ledger {

struct ImportFiles {
  std::string transactions;  // CreditTransaction.csv
  std::string balances;      // UserBalance.csv
  std::string users;         // User.csv (optional: "" skips the user check)
};

struct ImportReport {
  size_t rows = 0;              // CreditTransaction rows read
  size_t appended = 0;          // events appended for rows
  size_t already = 0;           // rows found in the ledger already
  size_t activated = 0;         // pending here, active in the export: activated
  size_t as_adjust = 0;         // rows appended as an adjust (see above)
  size_t skipped = 0;           // rows that moved nothing and cannot be pending
  size_t rekeyed = 0;           // keys over 128 bytes, stored as "pgkey:<hash>"
  size_t running_checked = 0;   // active rows whose running balance was compared
  size_t running_mismatch = 0;  // ... and differed (e.g. a top-up activated later)
  size_t balance_rows = 0;      // UserBalance rows
  size_t users_adjusted = 0;    // balances set right at the end
  size_t users_in_user_table = 0;
  size_t users_not_in_user_table = 0;  // ledger users the User table lacks
  std::vector<std::string> notes;      // the first details of each kind of finding
};

using ImportProgress = std::function<void(size_t done, size_t total)>;

// Imports into an open ledger (its options should leave monthly refills off).
// Fails on unreadable files or missing columns; every row-level finding is in
// the report instead.
Status RunImport(Ledger* ledger, const ImportFiles& files, ImportReport* report,
                 const ImportProgress& progress = nullptr);

std::string ImportReportJson(const ImportReport& report);

// PostgreSQL's text for a timestamp ("2026-01-31 12:00:00.123", with or
// without an offset like "+00" or "+05:30") or RFC 3339, as microseconds UTC.
std::optional<TimeUs> ParsePgTime(std::string_view text);

}  // namespace ledger
