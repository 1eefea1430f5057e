#include "replay/replay.h"

#include <memory>

#include "events/codec.h"

namespace ledger {

Status ReplayLog(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* log_cf, Seq after_seq,
                 uint64_t after_checksum, Projection* projection, const ReplayOptions& options,
                 ReplayResult* result) {
  rocksdb::ReadOptions ro;
  ro.readahead_size = 4 << 20;
  ro.fill_cache = false;
  ro.verify_checksums = true;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro, log_cf));
  Seq expected = after_seq + 1;
  uint64_t checksum = after_checksum;
  result->last_seq = after_seq;
  result->last_checksum = after_checksum;
  Event event;
  auto problem = [&](std::string message) -> bool {
    result->problems.push_back(std::move(message));
    return options.stop_on_problem;
  };
  for (it->Seek(SeqKey(expected)); it->Valid(); it->Next()) {
    Seq seq = DecodeSeqKey(std::string_view(it->key().data(), it->key().size()));
    if (options.to_seq != 0 && seq > options.to_seq) break;
    if (seq != expected) {
      if (problem("seq " + std::to_string(expected) + ": missing (next record is seq " +
                  std::to_string(seq) + ")")) {
        break;
      }
      expected = seq;
    }
    rocksdb::Slice v = it->value();
    uint64_t next_checksum = 0;
    Status s =
        DecodeRecord(std::string_view(v.data(), v.size()), checksum, seq, &event, &next_checksum,
                     options.on_event ? DecodeScope::kAll : DecodeScope::kFold);
    if (!s.ok()) {
      if (problem(s.message())) break;
      // Keep the chain going from the stored checksum so one bad record is
      // reported once, not for every record after it.
      if (v.size() >= 8) {
        uint64_t stored = 0;
        for (int i = 0; i < 8; ++i) {
          stored |= static_cast<uint64_t>(static_cast<uint8_t>(v[v.size() - 8 + i])) << (8 * i);
        }
        checksum = stored;
      }
      ++expected;
      continue;
    }
    if (options.to_time != 0 && event.time_us > options.to_time) {
      // Skip, do not stop: the log is in seq order, and only each user's
      // times are monotonic, so a later event of another user may still be
      // at or before the time. Skipping keeps each user's prefix.
      checksum = next_checksum;
      ++expected;
      continue;
    }
    s = projection->Apply(event);
    if (!s.ok()) {
      if (problem(s.message())) break;
      checksum = next_checksum;
      ++expected;
      continue;
    }
    if (options.on_event) options.on_event(event);
    checksum = next_checksum;
    result->last_seq = seq;
    result->last_checksum = checksum;
    ++result->events;
    ++expected;
    if (options.progress && result->events % options.progress_every == 0) {
      options.progress(seq, result->events);
    }
  }
  if (!it->status().ok()) {
    result->problems.push_back("log read failed after seq " + std::to_string(result->last_seq) +
                               ": " + it->status().ToString());
  }
  if (options.progress) options.progress(result->last_seq, result->events);
  if (!result->problems.empty() && options.stop_on_problem) {
    return Status::Error(result->problems.front());
  }
  return Status::Ok();
}

}  // namespace ledger
