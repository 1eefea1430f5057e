#include "engine/csv.h"

#include <cctype>

namespace ledger {

bool CsvReader::Next(CsvRow* row) {
  row->clear();
  if (!error_.empty() || pos_ >= text_.size()) return false;
  line_ = next_line_;
  std::string field;
  bool quoted = false;
  while (true) {
    if (pos_ < text_.size() && text_[pos_] == '"' && field.empty() && !quoted) {
      quoted = true;
      ++pos_;
      while (true) {
        if (pos_ >= text_.size()) {
          error_ = "line " + std::to_string(line_) + ": a quoted field is not closed";
          return false;
        }
        char c = text_[pos_++];
        if (c == '"') {
          if (pos_ < text_.size() && text_[pos_] == '"') {
            field.push_back('"');
            ++pos_;
            continue;
          }
          break;
        }
        if (c == '\n') ++next_line_;
        field.push_back(c);
      }
    }
    // Unquoted text up to the separator (after a closing quote, nothing may follow).
    while (pos_ < text_.size() && text_[pos_] != ',' && text_[pos_] != '\n' &&
           text_[pos_] != '\r') {
      if (quoted) {
        error_ = "line " + std::to_string(line_) + ": text after a closing quote";
        return false;
      }
      field.push_back(text_[pos_++]);
    }
    if (quoted || !field.empty()) {
      row->emplace_back(std::move(field));
    } else {
      row->emplace_back(std::nullopt);
    }
    field.clear();
    quoted = false;
    if (pos_ < text_.size() && text_[pos_] == ',') {
      ++pos_;
      continue;
    }
    // End of record: CRLF, LF or the end of the text.
    if (pos_ < text_.size() && text_[pos_] == '\r') ++pos_;
    if (pos_ < text_.size() && text_[pos_] == '\n') ++pos_;
    ++next_line_;
    return true;
  }
}

CsvHeader::CsvHeader(const CsvRow& header) {
  for (const CsvField& f : header) names_.push_back(Fold(f.value_or("")));
}

std::string CsvHeader::Fold(std::string_view name) {
  std::string out;
  for (char c : name) {
    if (c != '_') out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  return out;
}

std::optional<size_t> CsvHeader::Find(std::string_view name) const {
  std::string folded = Fold(name);
  for (size_t i = 0; i < names_.size(); ++i) {
    if (names_[i] == folded) return i;
  }
  return std::nullopt;
}

}  // namespace ledger
