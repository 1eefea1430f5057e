// Encoding of events and log records.
//
// A log record (the value stored under an 8-byte big-endian seq key in the
// `log` column family) is the Cap'n Proto flat-array encoding of one Event
// followed by an 8-byte little-endian XXH3-64 checksum of those bytes, seeded
// with the previous record's checksum. See events/RECORD_FORMAT.md.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "events/event.h"
#include "events/status.h"

namespace capnp {
class MessageBuilder;
}

namespace ledger {

// Appends `message` in Cap'n Proto's flat-array (stream) format to `out`,
// without the intermediate array capnp::messageToFlatArray allocates.
void AppendMessage(capnp::MessageBuilder& message, std::string* out);

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

// 8-byte big-endian key encoding for seqs (keeps RocksDB order = seq order).
std::string SeqKey(Seq seq);
void AppendSeqKey(Seq seq, std::string* out);
Seq DecodeSeqKey(std::string_view key);

}  // namespace ledger
