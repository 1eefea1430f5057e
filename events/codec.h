// Encoding of events and log records.
//
// A log record (the value stored under an 8-byte big-endian seq key in the
// `log` column family) is the Cap'n Proto flat-array encoding of one Event
// followed by an 8-byte little-endian XXH3-64 checksum of those bytes, seeded
// with the previous record's checksum. See events/RECORD_FORMAT.md.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "events/event.h"
#include "events/status.h"

namespace capnp {
class MessageBuilder;
}

namespace ledger {

// Stores `value` at `at` little-endian (Cap'n Proto's byte order), for the
// messages written directly rather than through Cap'n Proto's builder.
template <typename T>
void StoreLittleEndian(char* at, T value) {
  static_assert(sizeof(T) == 2 || sizeof(T) == 4 || sizeof(T) == 8);
  if constexpr (std::endian::native == std::endian::big) {
    if constexpr (sizeof(T) == 2)
      value = static_cast<T>(__builtin_bswap16(static_cast<uint16_t>(value)));
    if constexpr (sizeof(T) == 4)
      value = static_cast<T>(__builtin_bswap32(static_cast<uint32_t>(value)));
    if constexpr (sizeof(T) == 8)
      value = static_cast<T>(__builtin_bswap64(static_cast<uint64_t>(value)));
  }
  std::memcpy(at, &value, sizeof(T));
}

// Words of a Cap'n Proto text of `bytes` bytes: the bytes and a NUL, rounded
// up to whole words.
inline size_t CapnpTextWords(size_t bytes) { return bytes / 8 + 1; }

// Appends a one-segment Cap'n Proto message of `words` zeroed words to `out`
// (the segment table, then the segment); returns the segment's offset in
// `out`.
inline size_t AppendCapnpSegment(size_t words, std::string* out) {
  size_t at = out->size();
  out->resize(at + 8 + words * 8);                   // zeroed: unset fields and padding stay 0
  StoreLittleEndian<uint32_t>(out->data() + at, 0);  // one segment (the count less one)
  StoreLittleEndian<uint32_t>(out->data() + at + 4, static_cast<uint32_t>(words));
  return at + 8;
}

// Points the pointer at word `pointer_word` of `segment` to a text of `bytes`
// bytes at word `text_word`: a list pointer (tag 1) with its offset in words
// from the word after the pointer, element size 2 (bytes), and the count
// with the NUL.
inline void PointCapnpText(char* segment, size_t pointer_word, size_t text_word, size_t bytes) {
  uint32_t offset = static_cast<uint32_t>(text_word - (pointer_word + 1));
  StoreLittleEndian<uint32_t>(segment + pointer_word * 8, offset << 2 | 1);
  StoreLittleEndian<uint32_t>(segment + pointer_word * 8 + 4, 2 | static_cast<uint32_t>(bytes + 1)
                                                                      << 3);
}

// Appends `message` in Cap'n Proto's flat-array (stream) format to `out`,
// without the intermediate array capnp::messageToFlatArray allocates.
void AppendMessage(capnp::MessageBuilder& message, std::string* out);

// Cap'n Proto's packed encoding of `words` (a whole number of 8-byte words,
// as a flat-array message is), appended to `out`: each word as a tag byte
// naming its nonzero bytes, then those bytes; runs of zero words and of
// words with at most one zero byte are counted. The same bytes as
// capnp::writePackedMessage writes for the same message (codec_test).
// On x86-64 CPUs with SSSE3 (nearly all), a word at a time;
// PackWordsBytewise is the portable loop it replaces elsewhere.
void PackWords(std::string_view words, std::string* out);
void PackWordsBytewise(std::string_view words, std::string* out);

// The reverse: false if `packed` is cut short or would unpack to more than
// `max_words` words (a hostile record cannot make the reader allocate more).
bool UnpackWords(std::string_view packed, size_t max_words, std::vector<uint64_t>* words);

// Whether an event payload is packed. An unpacked flat-array message starts
// with its segment count less one, 0 (or 1 in records written by Cap'n
// Proto's builder before 2026-11-23), in its first byte; a packed one starts
// with the tag of that word, whose segment size (bytes 4-7, never all zero)
// makes it at least 0x10.
inline bool IsPacked(std::string_view payload) {
  return !payload.empty() && static_cast<uint8_t>(payload[0]) >= 0x10;
}

// Checksum seed of the first record (seq 1).
inline constexpr uint64_t kGenesisChecksum = 0x6c65646765722d31ULL;  // "ledger-1"

// Upper bound on one encoded record; protects the decoder from hostile sizes.
// An event's variable fields are bounded by the API limits (ids 128 B,
// metadata 64 KiB, reason 1 KiB), so 256 KiB leaves ample room.
inline constexpr size_t kRecordBytesMax = 256 * 1024;

// Appends the Cap'n Proto encoding of `event` to `out`.
void EncodeEvent(const Event& event, std::string* out);

// What to decode: everything, or only the fields the fold reads (replay
// skips metadata, reason, block id, decision and the key texts it ignores).
enum class DecodeScope { kAll, kFold };

// Decodes a Cap'n Proto encoded event. `bytes` need not be aligned.
Status DecodeEvent(std::string_view bytes, Event* event, DecodeScope scope = DecodeScope::kAll);

// Builds a full record: payload + checksum(payload, prev_checksum).
// Returns the record's checksum (the next record's seed).
uint64_t EncodeRecord(const Event& event, uint64_t prev_checksum, std::string* record);

// Splits and verifies a record against `prev_checksum`. On success fills
// `event` and `checksum`. A mismatch is reported naming `expected_seq`.
Status DecodeRecord(std::string_view record, uint64_t prev_checksum, Seq expected_seq, Event* event,
                    uint64_t* checksum, DecodeScope scope = DecodeScope::kAll);

// Checksum of a payload, chained.
uint64_t ChainChecksum(std::string_view payload, uint64_t prev_checksum);

// Records and snapshot values end in the XXH3-64 of what precedes it,
// 8 bytes little-endian. AppendChecksum appends the checksum of `out` from
// byte `from` on, seeded with `seed` (the previous record's checksum; 0 for
// snapshot values), and returns it.
uint64_t AppendChecksum(std::string* out, size_t from, uint64_t seed);

// The checksum stored in the last 8 bytes of `sealed` (at least 8 long).
inline uint64_t StoredChecksum(std::string_view sealed) {
  uint64_t sum;
  std::memcpy(&sum, sealed.data() + sealed.size() - 8, 8);
  return std::endian::native == std::endian::little ? sum : __builtin_bswap64(sum);
}

// 8-byte big-endian key encoding for seqs (keeps RocksDB order = seq order).
std::string SeqKey(Seq seq);
void AppendSeqKey(Seq seq, std::string* out);
Seq DecodeSeqKey(std::string_view key);

}  // namespace ledger
