// Status: the result of a fallible operation (I/O, decoding, verification).
// Business rejections are not Statuses; they are ordinary results (engine/result.h).
#pragma once

#include <string>
#include <utility>

namespace ledger {

class [[nodiscard]] Status {
 public:
  Status() = default;
  static Status Ok() { return Status(); }
  static Status Error(std::string message) { return Status(std::move(message)); }

  bool ok() const { return !failed_; }
  const std::string& message() const { return message_; }

  // For the rare call whose failure really does not matter; searchable.
  void IgnoreError() const {}

 private:
  explicit Status(std::string message) : failed_(true), message_(std::move(message)) {}
  bool failed_ = false;
  std::string message_;
};

}  // namespace ledger
