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
  auto problem = [&](std::string message) -> bool {
    result->problems.push_back(std::move(message));
    return options.stop_on_problem;
  };
  // Records are decoded (and their chain checked) a window ahead of the fold;
  // the window's users are prefetched, then its events applied in seq order.
  // The fold's order and results are exactly those of one-by-one replay.
  struct Decoded {
    Event event;
    uint64_t next_checksum = 0;
    uint64_t id_hash = 0;
    bool skip = false;  // after options.to_time
  };
  constexpr size_t kWindow = 64;
  std::vector<Decoded> window(kWindow);
  size_t filled = 0;
  bool stopped = false;
  // Applies the decoded window; false when a problem stops the replay.
  auto apply_window = [&]() -> bool {
    for (size_t i = 0; i < filled; ++i) {
      if (!window[i].skip) projection->PrefetchSlot(window[i].id_hash);
    }
    for (size_t i = 0; i < filled; ++i) {
      if (!window[i].skip) projection->PrefetchEntry(window[i].id_hash);
    }
    for (size_t i = 0; i < filled; ++i) {
      Decoded& d = window[i];
      if (!d.skip) {
        Status s = projection->Apply(d.event, d.id_hash);
        if (!s.ok()) {
          if (problem(s.message())) return false;
          continue;
        }
        if (options.on_event) options.on_event(d.event);
        result->last_seq = d.event.seq;
        result->last_checksum = d.next_checksum;
        ++result->events;
        if (options.progress && result->events % options.progress_every == 0) {
          options.progress(d.event.seq, result->events);
        }
      }
    }
    filled = 0;
    return true;
  };
  for (it->Seek(SeqKey(expected)); it->Valid() && !stopped; it->Next()) {
    Seq seq = DecodeSeqKey(std::string_view(it->key().data(), it->key().size()));
    if (options.to_seq != 0 && seq > options.to_seq) break;
    if (seq != expected) {
      if (!apply_window()) break;
      if (problem("seq " + std::to_string(expected) + ": missing (next record is seq " +
                  std::to_string(seq) + ")")) {
        break;
      }
      expected = seq;
    }
    rocksdb::Slice v = it->value();
    Decoded& d = window[filled];
    Status s =
        DecodeRecord(std::string_view(v.data(), v.size()), checksum, seq, &d.event,
                     &d.next_checksum, options.on_event ? DecodeScope::kAll : DecodeScope::kFold);
    if (!s.ok()) {
      if (!apply_window()) break;
      if (problem(s.message())) break;
      // Keep the chain going from the stored checksum so one bad record is
      // reported once, not for every record after it.
      if (v.size() >= 8) checksum = StoredChecksum(std::string_view(v.data(), v.size()));
      ++expected;
      continue;
    }
    // Skip, do not stop, after to_time: the log is in seq order and only each
    // user's times are monotonic, so a later event of another user may still
    // be at or before the time. Skipping keeps each user's prefix.
    d.skip = options.to_time != 0 && d.event.time_us > options.to_time;
    d.id_hash = d.skip ? 0 : UserIdHash(d.event.user_id);
    checksum = d.next_checksum;
    ++expected;
    if (++filled == kWindow && !apply_window()) stopped = true;
  }
  if (!stopped) apply_window();
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
