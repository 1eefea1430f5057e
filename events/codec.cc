#include "events/codec.h"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <xxhash.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <bit>
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

// The Event struct as the schema compiler lays it out (event.capnp.h): 9
// data words and 9 pointers. Byte offsets in the data section:
constexpr uint32_t kEventDataWords = 9;
constexpr uint32_t kEventPointers = 9;
// A field appended to the schema changes the struct's size: EncodeEvent
// must then learn to write it (and codec_test's builder to set it).
static_assert(::Event::_capnpPrivate::dataWordSize == kEventDataWords &&
                  ::Event::_capnpPrivate::pointerCount == kEventPointers,
              "event.capnp changed: update EncodeEvent");
constexpr size_t kSeqAt = 0, kTimeAt = 8, kKindAt = 16, kFlagsAt = 18, kRuleIndexAt = 20,
                 kAmountAt = 24, kAppliedAt = 32, kRunningBalanceAt = 40, kRefSeqAt = 48,
                 kCeilingAt = 56, kPrevUserSeqAt = 64;
// The bits of the flags byte (bool fields 144, 145, 146).
constexpr uint8_t kActiveBit = 1, kHasCeilingBit = 2, kAllowNegativeBit = 4;
// Texts follow the struct in pointer-slot order, as Cap'n Proto's builder
// places texts set in field order; userId, key and metadata are set even
// when empty (the others are left null).
constexpr int kTextsAlwaysSet = 3;

// The packer's two runs, after a word whose tag is 0 or 0xff: the count of
// the zero words that follow (the tag-0 word's run), or of the words with
// at most one zero byte, copied after their count (Cap'n Proto's packer
// chooses so: from two zeros on, tags are shorter). Each returns the new
// output end and moves `in` past the run.
inline uint8_t* PackZeroRun(const uint8_t*& in, const uint8_t* end, uint8_t* o) {
  const uint8_t* run = in;
  while (in < end && in - run < 255 * 8) {
    uint64_t w;
    std::memcpy(&w, in, 8);
    if (w != 0) break;
    in += 8;
  }
  *o++ = static_cast<uint8_t>((in - run) / 8);
  return o;
}

// A word's tag without a branch per byte: bit i set when byte i (in memory
// order) is not zero.
inline uint8_t NonzeroBytes(const uint8_t* p) {
  uint64_t w;
  std::memcpy(&w, p, 8);
  if constexpr (std::endian::native == std::endian::big) w = __builtin_bswap64(w);
  // The high bit of each byte, set when any bit of the byte is; then byte
  // i's (bit 8i+7) gathered to bit 56+i.
  constexpr uint64_t kLow7 = 0x7f7f7f7f7f7f7f7fULL;
  uint64_t high = (((w & kLow7) + kLow7) | w) & ~kLow7;
  return static_cast<uint8_t>(((high >> 7) * 0x0102040810204080ULL) >> 56);
}

inline uint8_t* PackDenseRun(const uint8_t*& in, const uint8_t* end, uint8_t* o) {
  const uint8_t* run = in;
  while (in < end && in - run < 255 * 8) {
    auto zeros = static_cast<uint8_t>(~NonzeroBytes(in));
    if ((zeros & (zeros - 1)) != 0) break;  // two zero bytes or more
    in += 8;
  }
  *o++ = static_cast<uint8_t>((in - run) / 8);
  std::memcpy(o, run, static_cast<size_t>(in - run));
  return o + (in - run);
}

// Packs whole words with `pack_word(in, o)`, which writes a word's tag and
// its nonzero bytes at `o` (it may write all nine bytes whatever the tag)
// and returns the tag. At most one tag byte and eight data bytes a word,
// plus a count byte for each run (at most one run per word), plus slack.
template <typename PackWord>
[[gnu::always_inline]] inline void PackAll(std::string_view words, std::string* out,
                                           PackWord pack_word) {
  const auto* in = reinterpret_cast<const uint8_t*>(words.data());
  const uint8_t* const end = in + words.size() / 8 * 8;
  size_t at = out->size();
  out->resize(at + words.size() / 8 * 10 + 16);
  auto* o = reinterpret_cast<uint8_t*>(out->data() + at);
  uint8_t* const start = o;
  while (in < end) {
    uint8_t bits = pack_word(in, o);
    o += 1 + std::popcount(bits);
    in += 8;
    if (bits == 0) {
      o = PackZeroRun(in, end, o);
    } else if (bits == 0xff) {
      o = PackDenseRun(in, end, o);
    }
  }
  out->resize(at + static_cast<size_t>(o - start));
}

#if defined(__x86_64__)
// For each tag, the shuffle that gathers a word's nonzero bytes to its
// front (0x80: a zero byte).
struct GatherMasks {
  alignas(16) uint8_t mask[256][16];
};
constexpr GatherMasks kGatherMasks = [] {
  GatherMasks g{};
  for (int tag = 0; tag < 256; ++tag) {
    int k = 0;
    for (int i = 0; i < 8; ++i) {
      if ((tag >> i) & 1) g.mask[tag][k++] = static_cast<uint8_t>(i);
    }
    while (k < 16) g.mask[tag][k++] = 0x80;
  }
  return g;
}();

// A word at a time: its tag from one compare, its nonzero bytes gathered by
// one shuffle and stored together. The bytewise loop mispredicted on nearly
// every data byte: 115-125 against 45-48 ns for the benchmark's records
// (~31 words), ~1.5% of the server's CPU per event.
__attribute__((target("ssse3,popcnt"))) void PackWordsSsse3(std::string_view words,
                                                            std::string* out) {
  PackAll(
      words, out, [](const uint8_t* in, uint8_t* o) __attribute__((target("ssse3,popcnt"))) {
        __m128i w = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(in));
        auto bits =
            static_cast<uint8_t>(~_mm_movemask_epi8(_mm_cmpeq_epi8(w, _mm_setzero_si128())));
        *o = bits;
        __m128i gather = _mm_load_si128(reinterpret_cast<const __m128i*>(kGatherMasks.mask[bits]));
        _mm_storel_epi64(reinterpret_cast<__m128i*>(o + 1), _mm_shuffle_epi8(w, gather));
        return bits;
      });
}
#endif

}  // namespace

void PackWordsBytewise(std::string_view words, std::string* out) {
  PackAll(words, out, [](const uint8_t* in, uint8_t* o) {
    uint8_t bits = 0;
    uint8_t* data = o + 1;
    for (int i = 0; i < 8; ++i) {
      if (in[i] != 0) {
        bits |= static_cast<uint8_t>(1u << i);
        *data++ = in[i];
      }
    }
    *o = bits;
    return bits;
  });
}

void PackWords(std::string_view words, std::string* out) {
#if defined(__x86_64__)
  static const bool ssse3 = __builtin_cpu_supports("ssse3") && __builtin_cpu_supports("popcnt");
  if (ssse3) return PackWordsSsse3(words, out);
#endif
  PackWordsBytewise(words, out);
}

bool UnpackWords(std::string_view packed, size_t max_words, std::vector<uint64_t>* words) {
  const auto* in = reinterpret_cast<const uint8_t*>(packed.data());
  const uint8_t* const end = in + packed.size();
  words->clear();
  while (in < end) {
    uint8_t tag = *in++;
    uint64_t word = 0;
    for (int i = 0; i < 8; ++i) {
      if ((tag >> i) & 1) {
        if (in == end) return false;
        word |= static_cast<uint64_t>(*in++) << (8 * i);
      }
    }
    if (words->size() >= max_words) return false;
    words->push_back(std::endian::native == std::endian::little ? word : __builtin_bswap64(word));
    if (tag == 0 || tag == 0xff) {
      if (in == end) return false;
      size_t count = *in++;
      if (words->size() + count > max_words) return false;
      if (tag == 0) {
        words->resize(words->size() + count, 0);
      } else {
        if (static_cast<size_t>(end - in) < count * 8) return false;
        size_t old = words->size();
        words->resize(old + count);
        std::memcpy(words->data() + old, in, count * 8);
        in += count * 8;
      }
    }
  }
  return true;
}

void AppendMessage(capnp::MessageBuilder& message, std::string* out) {
  StringOutput stream(out);
  capnp::writeMessage(stream, message);
}

// Writes the message Cap'n Proto's builder writes for this event (one
// segment; codec_test compares every byte with the builder's), directly:
// the builder's per-field calls into libcapnp cost ~1,400 instructions an
// event, a third of the write thread's work outside RocksDB.
void EncodeEvent(const Event& e, std::string* out) {
  const std::string* texts[kEventPointers] = {&e.user_id, &e.key,      &e.metadata,
                                              &e.ref_key, &e.status,   &e.reason,
                                              &e.new_key, &e.block_id, &e.decision};
  auto is_set = [&](int i) { return i < kTextsAlwaysSet || !texts[i]->empty(); };
  size_t words = 1 + kEventDataWords + kEventPointers;  // the root pointer, then the struct
  for (int i = 0; i < static_cast<int>(kEventPointers); ++i) {
    if (is_set(i)) words += CapnpTextWords(texts[i]->size());
  }
  size_t at = AppendCapnpSegment(words, out);
  char* segment = out->data() + at;
  // The root: a struct pointer to the words right after it.
  StoreLittleEndian<uint32_t>(segment, 0);
  StoreLittleEndian<uint32_t>(segment + 4, kEventDataWords | kEventPointers << 16);
  char* data = segment + 8;
  StoreLittleEndian<uint64_t>(data + kSeqAt, e.seq);
  StoreLittleEndian<int64_t>(data + kTimeAt, e.time_us);
  StoreLittleEndian<uint16_t>(data + kKindAt, static_cast<uint16_t>(e.kind));
  data[kFlagsAt] =
      static_cast<char>((e.active ? kActiveBit : 0) | (e.has_ceiling ? kHasCeilingBit : 0) |
                        (e.allow_negative ? kAllowNegativeBit : 0));
  // Stored XOR its default, -1.
  StoreLittleEndian<uint32_t>(data + kRuleIndexAt,
                              static_cast<uint32_t>(e.rule_index) ^ 0xffffffffu);
  StoreLittleEndian<int64_t>(data + kAmountAt, e.amount);
  StoreLittleEndian<int64_t>(data + kAppliedAt, e.applied);
  StoreLittleEndian<int64_t>(data + kRunningBalanceAt, e.running_balance);
  StoreLittleEndian<uint64_t>(data + kRefSeqAt, e.ref_seq);
  StoreLittleEndian<int64_t>(data + kCeilingAt, e.ceiling);
  StoreLittleEndian<uint64_t>(data + kPrevUserSeqAt, e.prev_user_seq);
  size_t next = 1 + kEventDataWords + kEventPointers;  // the next text's word
  for (uint32_t i = 0; i < kEventPointers; ++i) {
    if (!is_set(static_cast<int>(i))) continue;  // a null pointer
    const std::string& t = *texts[i];
    PointCapnpText(segment, 1 + kEventDataWords + i, next, t.size());
    std::memcpy(segment + next * 8, t.data(), t.size());
    next += CapnpTextWords(t.size());
  }
}

Status DecodeEvent(std::string_view bytes, Event* e, DecodeScope scope) {
  if (bytes.empty()) return Status::Error("event payload is empty");
  // Cap'n Proto reads words in place: unpack or copy into aligned storage.
  thread_local std::vector<uint64_t> aligned;  // uint64_t: capnp::word is not copyable
  if (IsPacked(bytes)) {
    if (!UnpackWords(bytes, kRecordBytesMax / sizeof(capnp::word), &aligned)) {
      return Status::Error("event payload is not valid packed Cap'n Proto");
    }
  } else {
    if (bytes.size() % sizeof(capnp::word) != 0) {
      return Status::Error("event payload is not a whole number of words");
    }
    aligned.resize(bytes.size() / sizeof(capnp::word));
    std::memcpy(aligned.data(), bytes.data(), bytes.size());
  }
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
  thread_local std::string words;
  words.clear();
  EncodeEvent(event, &words);
  size_t start = record->size();
  PackWords(words, record);
  return AppendChecksum(record, start, prev_checksum);
}

uint64_t AppendChecksum(std::string* out, size_t from, uint64_t seed) {
  uint64_t sum = ChainChecksum(std::string_view(*out).substr(from), seed);
  char tail[8];
  StoreLittleEndian<uint64_t>(tail, sum);
  out->append(tail, 8);
  return sum;
}

Status DecodeRecord(std::string_view record, uint64_t prev_checksum, Seq expected_seq, Event* event,
                    uint64_t* checksum, DecodeScope scope) {
  std::string where = "seq " + std::to_string(expected_seq) + ": ";
  if (record.size() < 16 || record.size() > kRecordBytesMax) {
    return Status::Error(where + "record has impossible size " + std::to_string(record.size()));
  }
  std::string_view payload = record.substr(0, record.size() - 8);
  uint64_t stored = StoredChecksum(record);
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
