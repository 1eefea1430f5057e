// RFC 4180 CSV as PostgreSQL's `\copy ... WITH (FORMAT csv, HEADER true)`
// writes it: fields separated by commas, quoted with '"' when they hold a
// comma, quote or line break ('""' is a quote), records ending in LF or CRLF.
// An unquoted empty field is NULL; a quoted empty field is the empty string.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ledger {

using CsvField = std::optional<std::string>;  // nullopt: NULL
using CsvRow = std::vector<CsvField>;

class CsvReader {
 public:
  explicit CsvReader(std::string_view text) : text_(text) {}
  // Reads the next record; false at the end or on an error (see error()).
  bool Next(CsvRow* row);
  const std::string& error() const { return error_; }
  size_t line() const { return line_; }  // the line the last record started on

 private:
  std::string_view text_;
  size_t pos_ = 0;
  size_t line_ = 0;
  size_t next_line_ = 1;
  std::string error_;
};

// Maps column names to positions, matching names case-insensitively and
// ignoring '_' (so "userId" and "user_id" are the same column).
class CsvHeader {
 public:
  explicit CsvHeader(const CsvRow& header);
  // Position of the column, or nullopt when the header lacks it.
  std::optional<size_t> Find(std::string_view name) const;

 private:
  static std::string Fold(std::string_view name);
  std::vector<std::string> names_;
};

}  // namespace ledger
