// Small text helpers shared by the server, the tools and the importer.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "events/status.h"

namespace ledger {

// A non-negative decimal of 1 to 19 digits and nothing else.
std::optional<uint64_t> ParseDecimal(std::string_view text);

// The whole file, as bytes.
Status ReadWholeFile(const std::string& path, std::string* out);

}  // namespace ledger
