#include "events/codec.h"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <xxhash.h>

#include <cstring>
#include <memory>
#include <vector>

#include "event.capnp.h"

namespace ledger {

namespace {

// Cap'n Proto reader limits for a single event: the traversal limit bounds the
// work a corrupt or hostile record can cause; nesting is flat by construction.
capnp::ReaderOptions EventReaderOptions() {
  capnp::ReaderOptions options;
  options.traversalLimitInWords = kRecordBytesMax / 8;
  options.nestingLimit = 8;
  return options;
}

kj::StringPtr Text(const std::string& s) { return kj::StringPtr(s.c_str(), s.size()); }

// Writes what capnp::writeMessage produces straight into a string.
class StringOutput : public kj::OutputStream {
 public:
  explicit StringOutput(std::string* out) : out_(out) {}
  void write(const void* buffer, size_t size) override {
    out_->append(static_cast<const char*>(buffer), size);
  }

 private:
  std::string* out_;
};

// An event's first segment: 512 words, enough for all but events with large
// metadata (those continue in further segments). Reused by every event the
// thread encodes instead of a zeroed 4 KiB allocation each; the builder
// zeroes what it used when it is destroyed, as capnp requires.
constexpr size_t kEventSegmentWords = 512;

}  // namespace

void AppendMessage(capnp::MessageBuilder& message, std::string* out) {
  StringOutput stream(out);
  capnp::writeMessage(stream, message);
}

void EncodeEvent(const Event& e, std::string* out) {
  thread_local std::unique_ptr<capnp::word[]> segment(new capnp::word[kEventSegmentWords]());
  capnp::MallocMessageBuilder message(kj::arrayPtr(segment.get(), kEventSegmentWords));
  auto b = message.initRoot<::Event>();
  b.setSeq(e.seq);
  b.setTimeUs(e.time_us);
  b.setUserId(Text(e.user_id));
  b.setKind(static_cast<::Kind>(e.kind));
  b.setKey(Text(e.key));
  b.setAmount(e.amount);
  b.setApplied(e.applied);
  b.setRunningBalance(e.running_balance);
  b.setActive(e.active);
  b.setMetadata(Text(e.metadata));
  b.setRefSeq(e.ref_seq);
  if (!e.ref_key.empty()) b.setRefKey(Text(e.ref_key));
  if (!e.status.empty()) b.setStatus(Text(e.status));
  if (!e.reason.empty()) b.setReason(Text(e.reason));
  if (!e.new_key.empty()) b.setNewKey(Text(e.new_key));
  b.setHasCeiling(e.has_ceiling);
  b.setCeiling(e.ceiling);
  if (!e.block_id.empty()) b.setBlockId(Text(e.block_id));
  b.setRuleIndex(e.rule_index);
  b.setAllowNegative(e.allow_negative);
  if (!e.decision.empty()) b.setDecision(Text(e.decision));
  b.setPrevUserSeq(e.prev_user_seq);
  AppendMessage(message, out);
}

Status DecodeEvent(std::string_view bytes, Event* e, DecodeScope scope) {
  if (bytes.size() % sizeof(capnp::word) != 0 || bytes.empty()) {
    return Status::Error("event payload is not a whole number of words");
  }
  // Cap'n Proto reads words in place: copy into aligned storage.
  thread_local std::vector<uint64_t> aligned;  // uint64_t: capnp::word is not copyable
  aligned.resize(bytes.size() / sizeof(capnp::word));
  std::memcpy(aligned.data(), bytes.data(), bytes.size());
  try {
    capnp::FlatArrayMessageReader reader(
        kj::ArrayPtr<const capnp::word>(reinterpret_cast<const capnp::word*>(aligned.data()),
                                        aligned.size()),
        EventReaderOptions());
    auto r = reader.getRoot<::Event>();
    uint16_t kind = static_cast<uint16_t>(r.getKind());
    if (kind >= kKindCount) return Status::Error("unknown event kind " + std::to_string(kind));
    e->seq = r.getSeq();
    e->time_us = r.getTimeUs();
    auto text = [](std::string& out, capnp::Text::Reader t) { out.assign(t.cStr(), t.size()); };
    text(e->user_id, r.getUserId());
    e->kind = static_cast<Kind>(kind);
    e->amount = r.getAmount();
    e->applied = r.getApplied();
    e->running_balance = r.getRunningBalance();
    e->active = r.getActive();
    e->ref_seq = r.getRefSeq();
    e->has_ceiling = r.getHasCeiling();
    e->ceiling = r.getCeiling();
    e->rule_index = r.getRuleIndex();
    e->allow_negative = r.getAllowNegative();
    e->prev_user_seq = r.getPrevUserSeq();
    if (r.hasStatus()) {
      text(e->status, r.getStatus());
    } else {
      e->status.clear();
    }
    // The fold reads the key only for disputes (open disputes are keyed).
    if (scope == DecodeScope::kAll || e->kind == Kind::kDispute) {
      text(e->key, r.getKey());
    } else {
      e->key.clear();
    }
    if (scope == DecodeScope::kAll) {
      text(e->metadata, r.getMetadata());
      text(e->ref_key, r.getRefKey());
      text(e->reason, r.getReason());
      text(e->new_key, r.getNewKey());
      text(e->block_id, r.getBlockId());
      text(e->decision, r.getDecision());
    } else {
      e->metadata.clear();
      e->ref_key.clear();
      e->reason.clear();
      e->new_key.clear();
      e->block_id.clear();
      e->decision.clear();
    }
  } catch (const kj::Exception& ex) {
    return Status::Error(std::string("cannot decode event: ") + ex.getDescription().cStr());
  }
  return Status::Ok();
}

uint64_t ChainChecksum(std::string_view payload, uint64_t prev_checksum) {
  return XXH3_64bits_withSeed(payload.data(), payload.size(), prev_checksum);
}

uint64_t EncodeRecord(const Event& event, uint64_t prev_checksum, std::string* record) {
  size_t start = record->size();
  EncodeEvent(event, record);
  uint64_t sum = ChainChecksum(std::string_view(record->data() + start, record->size() - start),
                               prev_checksum);
  char tail[8];
  for (int i = 0; i < 8; ++i) tail[i] = static_cast<char>((sum >> (8 * i)) & 0xff);
  record->append(tail, 8);
  return sum;
}

Status DecodeRecord(std::string_view record, uint64_t prev_checksum, Seq expected_seq, Event* event,
                    uint64_t* checksum, DecodeScope scope) {
  std::string where = "seq " + std::to_string(expected_seq) + ": ";
  if (record.size() < 16 || record.size() > kRecordBytesMax) {
    return Status::Error(where + "record has impossible size " + std::to_string(record.size()));
  }
  std::string_view payload = record.substr(0, record.size() - 8);
  uint64_t stored = 0;
  for (int i = 0; i < 8; ++i) {
    stored |= static_cast<uint64_t>(static_cast<uint8_t>(record[payload.size() + i])) << (8 * i);
  }
  uint64_t computed = ChainChecksum(payload, prev_checksum);
  if (computed != stored) {
    // Tell a damaged record from a broken chain: does it check against any seed?
    return Status::Error(where + "checksum mismatch (record damaged, or a record before it " +
                         "is missing or out of order)");
  }
  Status s = DecodeEvent(payload, event, scope);
  if (!s.ok()) return Status::Error(where + s.message());
  if (event->seq != expected_seq) {
    return Status::Error(where + "record holds seq " + std::to_string(event->seq));
  }
  *checksum = stored;
  return Status::Ok();
}

std::string SeqKey(Seq seq) {
  std::string out;
  AppendSeqKey(seq, &out);
  return out;
}

void AppendSeqKey(Seq seq, std::string* out) {
  char buf[8];
  for (int i = 0; i < 8; ++i) buf[i] = static_cast<char>((seq >> (56 - 8 * i)) & 0xff);
  out->append(buf, 8);
}

Seq DecodeSeqKey(std::string_view key) {
  Seq seq = 0;
  for (size_t i = 0; i < 8 && i < key.size(); ++i) {
    seq = (seq << 8) | static_cast<uint8_t>(key[i]);
  }
  return seq;
}

}  // namespace ledger
