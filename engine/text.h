// Small text helpers shared by the server, the tools and the importer.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "events/status.h"

namespace ledger {

// A non-negative decimal of 1 to 19 digits and nothing else.
std::optional<uint64_t> ParseDecimal(std::string_view text);

// The position of the first byte at or after `from` that a JSON string
// cannot hold as it is: '"', '\\' or a control character below 0x20; with
// `ascii_only` also DEL and every byte of 0x80 and above. s.size() when none.
// Eight bytes at a time (a text of plain characters is a few steps, not a
// branch per byte): in each 64-bit word a byte's high bit is set where the
// byte equals '"' or '\\' or is below 0x20 (the usual "has zero byte" and
// "has byte less than" tricks, whose false hits lie only above a true one,
// so the lowest set bit is always a true hit).
inline size_t FindJsonSpecial(std::string_view s, size_t from, bool ascii_only = false) {
  constexpr uint64_t kOnes = 0x0101010101010101ull;
  constexpr uint64_t kHigh = 0x8080808080808080ull;
  size_t i = from;
  if constexpr (std::endian::native == std::endian::little) {
    for (; i + 8 <= s.size(); i += 8) {
      uint64_t v;
      std::memcpy(&v, s.data() + i, 8);
      uint64_t quote = v ^ (kOnes * '"');
      uint64_t slash = v ^ (kOnes * '\\');
      uint64_t hit =
          ((quote - kOnes) & ~quote) | ((slash - kOnes) & ~slash) | ((v - kOnes * 0x20) & ~v);
      if (ascii_only) {
        uint64_t del = v ^ (kOnes * 0x7f);
        hit |= ((del - kOnes) & ~del) | v;
      }
      hit &= kHigh;
      if (hit != 0) return i + (std::countr_zero(hit) >> 3);
    }
  }
  for (; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == '"' || c == '\\' || (ascii_only && c >= 0x7f)) return i;
  }
  return s.size();
}

// The whole file, as bytes.
Status ReadWholeFile(const std::string& path, std::string* out);

}  // namespace ledger
