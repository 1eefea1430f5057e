// libFuzzer target: a log record's payload as read back from the disk,
// packed (format 3) or not (format 2). Anything the decoder accepts must
// encode and decode to the same event, and unpacking whatever packing
// makes of unpacked words must give them back.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "events/codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view payload(reinterpret_cast<const char*>(data), size);
  std::vector<uint64_t> words;
  if (ledger::UnpackWords(payload, ledger::kRecordBytesMax / 8, &words)) {
    std::string packed;
    ledger::PackWords(
        std::string_view(reinterpret_cast<const char*>(words.data()), words.size() * 8), &packed);
    std::vector<uint64_t> again;
    if (!ledger::UnpackWords(packed, words.size(), &again) || again != words) __builtin_trap();
  }
  ledger::Event event;
  if (!ledger::DecodeEvent(payload, &event).ok()) return 0;
  std::string record;
  ledger::EncodeRecord(event, ledger::kGenesisChecksum, &record);
  ledger::Event back;
  uint64_t checksum = 0;
  if (!ledger::DecodeRecord(record, ledger::kGenesisChecksum, event.seq, &back, &checksum).ok() ||
      !(back == event)) {
    __builtin_trap();
  }
  return 0;
}
