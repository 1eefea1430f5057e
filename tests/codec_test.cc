#include <capnp/message.h>
#include <capnp/serialize-packed.h>
#include <gtest/gtest.h>

#include <random>

#include "event.capnp.h"
#include "events/codec.h"

namespace ledger {
namespace {

Event SampleEvent(Seq seq) {
  Event e;
  e.seq = seq;
  e.time_us = 1767225600000000 + static_cast<TimeUs>(seq);
  e.user_id = "alice-🚀";
  e.kind = Kind::kDispute;
  e.key = "dp_" + std::to_string(seq);
  e.amount = -500;
  e.applied = -500;
  e.running_balance = 1500;
  e.active = true;
  e.metadata = R"({"nested":{"a":[1,2,3]},"quote":"\"x\""})";
  e.ref_seq = 3;
  e.ref_key = "pi_123";
  e.status = "lost";
  e.decision = "contest";
  e.has_ceiling = true;
  e.ceiling = 9000;
  e.block_id = "llm";
  e.rule_index = 2;
  return e;
}

TEST(Codec, EventRoundTripsEveryField) {
  Event e = SampleEvent(7);
  std::string bytes;
  EncodeEvent(e, &bytes);
  Event back;
  ASSERT_TRUE(DecodeEvent(bytes, &back).ok());
  EXPECT_EQ(back, e);
}

TEST(Codec, EventsOverTheFirstSegmentAndAfterItRoundTrip) {
  // 64 KiB of metadata spills past the reused first segment; the small event
  // after it must not see any of its bytes.
  Event big = SampleEvent(8);
  big.metadata = "{\"blob\":\"" + std::string(64 * 1024, 'x') + "\"}";
  Event small = SampleEvent(9);
  small.metadata = "{}";
  small.status.clear();
  for (const Event& e : {big, small, big, small}) {
    std::string bytes;
    EncodeEvent(e, &bytes);
    Event back;
    ASSERT_TRUE(DecodeEvent(bytes, &back).ok());
    EXPECT_EQ(back, e);
  }
}

// What Cap'n Proto's own builder writes for `e`, every text set in field
// order as the ledger sets them (the first segment large enough for one).
std::string BuilderBytes(const Event& e) {
  auto text = [](const std::string& s) { return kj::StringPtr(s.c_str(), s.size()); };
  capnp::MallocMessageBuilder message(1 << 16);
  auto b = message.initRoot<::Event>();
  b.setSeq(e.seq);
  b.setTimeUs(e.time_us);
  b.setUserId(text(e.user_id));
  b.setKind(static_cast<::Kind>(e.kind));
  b.setKey(text(e.key));
  b.setAmount(e.amount);
  b.setApplied(e.applied);
  b.setRunningBalance(e.running_balance);
  b.setActive(e.active);
  b.setMetadata(text(e.metadata));
  b.setRefSeq(e.ref_seq);
  if (!e.ref_key.empty()) b.setRefKey(text(e.ref_key));
  if (!e.status.empty()) b.setStatus(text(e.status));
  if (!e.reason.empty()) b.setReason(text(e.reason));
  if (!e.new_key.empty()) b.setNewKey(text(e.new_key));
  b.setHasCeiling(e.has_ceiling);
  b.setCeiling(e.ceiling);
  if (!e.block_id.empty()) b.setBlockId(text(e.block_id));
  b.setRuleIndex(e.rule_index);
  b.setAllowNegative(e.allow_negative);
  if (!e.decision.empty()) b.setDecision(text(e.decision));
  b.setPrevUserSeq(e.prev_user_seq);
  std::string out;
  AppendMessage(message, &out);
  return out;
}

// What Cap'n Proto's own packer writes for the one-segment flat-array
// message `flat`.
std::string CapnpPacked(std::string_view flat) {
  struct Out : kj::OutputStream {
    std::string bytes;
    void write(const void* buffer, size_t size) override {
      bytes.append(static_cast<const char*>(buffer), size);
    }
  } out;
  std::vector<capnp::word> words(flat.size() / 8);
  std::memcpy(words.data(), flat.data(), flat.size());
  kj::ArrayPtr<const capnp::word> segments[1] = {kj::arrayPtr(words.data() + 1, words.size() - 1)};
  capnp::writePackedMessage(out, kj::arrayPtr(segments, 1));
  return out.bytes;
}

// Packs, checks the bytes against Cap'n Proto's packer and the record
// encoder's payload, and decodes them back to `e`.
void ExpectPackedLikeCapnp(const Event& e, const std::string& context) {
  std::string flat;
  EncodeEvent(e, &flat);
  std::string packed = "y";  // appended after what is there
  PackWords(flat, &packed);
  packed.erase(0, 1);
  ASSERT_EQ(packed, CapnpPacked(flat)) << context;
  EXPECT_TRUE(IsPacked(packed)) << context;
  EXPECT_FALSE(IsPacked(flat)) << context;
  std::string record;
  EncodeRecord(e, kGenesisChecksum, &record);
  ASSERT_EQ(record.substr(0, record.size() - 8), packed) << context;
  std::vector<uint64_t> words;
  ASSERT_TRUE(UnpackWords(packed, flat.size() / 8, &words)) << context;
  ASSERT_EQ(std::string_view(reinterpret_cast<const char*>(words.data()), words.size() * 8), flat)
      << context;
  EXPECT_FALSE(UnpackWords(packed, flat.size() / 8 - 1, &words)) << context << ": over the bound";
  Event back;
  ASSERT_TRUE(DecodeEvent(packed, &back).ok()) << context;
  ASSERT_EQ(back, e) << context;
}

TEST(Codec, EncodingIsByteForByteCapnProtosOwn) {
  // Random events (texts of every length around word boundaries, empty
  // ones, extreme numbers, each flag): the direct encoder writes exactly
  // the bytes of Cap'n Proto's builder, and they decode to the event.
  std::mt19937_64 rng(5);
  auto text = [&](size_t max) {
    size_t n = rng() % 3 == 0 ? 0 : rng() % (max + 1);
    std::string t(n, 'a');
    for (char& c : t) c = static_cast<char>('!' + rng() % 90);
    return t;
  };
  auto number = [&]() -> int64_t {
    switch (rng() % 4) {
      case 0:
        return 0;
      case 1:
        return static_cast<int64_t>(rng());
      case 2:
        return -static_cast<int64_t>(rng() % 5000);
      default:
        return static_cast<int64_t>(rng() % 5000);
    }
  };
  for (int round = 0; round < 5000; ++round) {
    Event e;
    e.seq = rng();
    e.time_us = number();
    e.user_id = text(20);
    e.kind = static_cast<Kind>(rng() % 8);
    e.key = text(40);
    e.amount = number();
    e.applied = number();
    e.running_balance = number();
    e.active = rng() % 2;
    e.metadata = round % 500 == 0 ? std::string(70000, 'm') : text(100);
    e.ref_seq = rng() % 2 ? 0 : rng();
    e.ref_key = text(17);
    e.status = text(9);
    e.reason = text(30);
    e.new_key = text(16);
    e.has_ceiling = rng() % 2;
    e.ceiling = number();
    e.block_id = text(8);
    e.rule_index = static_cast<int32_t>(rng() % 3 == 0 ? -1 : number());
    e.allow_negative = rng() % 2;
    e.decision = text(12);
    e.prev_user_seq = rng() % 2 ? 0 : rng();
    std::string bytes = "x";  // appended after what is there
    EncodeEvent(e, &bytes);
    ASSERT_EQ(bytes.substr(1), BuilderBytes(e)) << "round " << round;
    Event back;
    ASSERT_TRUE(DecodeEvent(std::string_view(bytes).substr(1), &back).ok());
    ASSERT_EQ(back, e);
    ExpectPackedLikeCapnp(e, "round " + std::to_string(round));
  }
}

TEST(Codec, WordsOfEveryShapePackAsCapnProtosPacker) {
  // Not only events' shapes: words with every count of zero bytes at every
  // place (bytes 0x80 and 0x01 among them, the edges of a word-at-a-time
  // zero test), runs of zero and of dense words past 255, in messages of
  // 1 to 700 words.
  std::mt19937_64 rng(11);
  auto byte = [&]() -> uint64_t {
    switch (rng() % 5) {
      case 0:
        return 0;
      case 1:
        return 0x80;
      case 2:
        return 0x01;
      case 3:
        return 0xff;
      default:
        return rng() & 0xff;
    }
  };
  for (int round = 0; round < 3000; ++round) {
    size_t n = 1 + rng() % (round % 10 == 0 ? 700 : 40);
    std::vector<uint64_t> words(n + 1);
    words[0] = static_cast<uint64_t>(n) << 32;  // the segment table: one segment of n words
    int shape = 0;
    for (size_t i = 1; i <= n; ++i) {
      if (rng() % 8 == 0) shape = static_cast<int>(rng() % 4);
      uint64_t w = 0;
      for (int b = 0; b < 8; ++b) {
        uint64_t v = shape == 0 ? 0 : shape == 1 ? (rng() % 9 == 0 ? 0 : 1 + rng() % 255) : byte();
        w |= v << (8 * b);
      }
      words[i] = w;
    }
    std::string flat(reinterpret_cast<const char*>(words.data()), words.size() * 8);
    std::string packed = "p";
    PackWords(flat, &packed);
    ASSERT_EQ(packed.substr(1), CapnpPacked(flat)) << "round " << round;
    std::string bytewise = "p";
    PackWordsBytewise(flat, &bytewise);
    ASSERT_EQ(bytewise, packed) << "round " << round;
    std::vector<uint64_t> back;
    ASSERT_TRUE(UnpackWords(std::string_view(packed).substr(1), words.size(), &back));
    ASSERT_EQ(back, words) << "round " << round;
  }
}

TEST(Codec, RecordsArePackedAndReadLikeCapnProtosPackedMessages) {
  Event sample = SampleEvent(7);
  ExpectPackedLikeCapnp(sample, "sample");
  // Long runs both ways: every text empty (words of zeros), and texts with
  // no zero byte in them (words copied as they are, past 255 in a run).
  Event sparse;
  sparse.seq = 1;
  ExpectPackedLikeCapnp(sparse, "sparse");
  Event dense = SampleEvent(8);
  dense.metadata = "{\"blob\":\"" + std::string(64 * 1024, 'x') + "\"}";
  dense.reason = std::string(1000, '\x01');
  ExpectPackedLikeCapnp(dense, "dense");

  // Any Cap'n Proto reader reads a record's payload as a packed message.
  std::string record;
  EncodeRecord(sample, kGenesisChecksum, &record);
  kj::ArrayInputStream in(
      kj::arrayPtr(reinterpret_cast<const kj::byte*>(record.data()), record.size() - 8));
  capnp::PackedMessageReader reader(in);
  EXPECT_EQ(reader.getRoot<::Event>().getSeq(), 7u);
  EXPECT_EQ(std::string(reader.getRoot<::Event>().getMetadata().cStr()), sample.metadata);
  // Smaller than the words it packs: the event's zeros are most of them.
  std::string flat;
  EncodeEvent(sample, &flat);
  EXPECT_LT(record.size() - 8, flat.size() * 3 / 4);
}

TEST(Codec, PackedPayloadsCutShortOrInflatedAreRejected) {
  std::string record;
  EncodeRecord(SampleEvent(3), kGenesisChecksum, &record);
  std::string_view packed(record.data(), record.size() - 8);
  Event e;
  for (size_t n = 1; n < packed.size(); ++n) {
    EXPECT_FALSE(DecodeEvent(packed.substr(0, n), &e).ok()) << n << " bytes";
  }
  // Two bytes a 256-word run of zeros: 1,100 of them would unpack to 2.2 MB,
  // past the 256 KiB any record may hold.
  std::string bomb = "\x10\x01";
  for (int i = 0; i < 1100; ++i) bomb += std::string("\x00\xff", 2);
  std::vector<uint64_t> words;
  EXPECT_FALSE(UnpackWords(bomb, kRecordBytesMax / 8, &words));
  EXPECT_LE(words.size(), kRecordBytesMax / 8);
  Status s = DecodeEvent(bomb, &e);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("packed"), std::string::npos) << s.message();
}

TEST(Codec, RecordsChainAndVerify) {
  std::string r1, r2;
  uint64_t c1 = EncodeRecord(SampleEvent(1), kGenesisChecksum, &r1);
  uint64_t c2 = EncodeRecord(SampleEvent(2), c1, &r2);
  Event e;
  uint64_t got = 0;
  ASSERT_TRUE(DecodeRecord(r1, kGenesisChecksum, 1, &e, &got).ok());
  EXPECT_EQ(got, c1);
  ASSERT_TRUE(DecodeRecord(r2, c1, 2, &e, &got).ok());
  EXPECT_EQ(got, c2);
  EXPECT_EQ(e.seq, 2u);
}

TEST(Codec, FlippedBitIsNamedBySeq) {
  std::string r;
  EncodeRecord(SampleEvent(42), 99, &r);
  r[r.size() / 2] ^= 0x04;
  Event e;
  uint64_t got;
  Status s = DecodeRecord(r, 99, 42, &e, &got);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("seq 42"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("checksum"), std::string::npos) << s.message();
}

TEST(Codec, MissingPredecessorBreaksTheChain) {
  std::string r1, r2, r3;
  uint64_t c1 = EncodeRecord(SampleEvent(1), kGenesisChecksum, &r1);
  uint64_t c2 = EncodeRecord(SampleEvent(2), c1, &r2);
  EncodeRecord(SampleEvent(3), c2, &r3);
  Event e;
  uint64_t got;
  // Record 2 lost: record 3 verified against record 1's checksum fails.
  Status s = DecodeRecord(r3, c1, 3, &e, &got);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("seq 3"), std::string::npos);
}

TEST(Codec, RecordUnderTheWrongSeqIsReported) {
  std::string r;
  EncodeRecord(SampleEvent(5), kGenesisChecksum, &r);
  Event e;
  uint64_t got;
  Status s = DecodeRecord(r, kGenesisChecksum, 6, &e, &got);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("holds seq 5"), std::string::npos) << s.message();
}

TEST(Codec, GarbageIsRejectedNotCrashed) {
  Event e;
  EXPECT_FALSE(DecodeEvent(std::string(64, '\xff'), &e).ok());
  EXPECT_FALSE(DecodeEvent(std::string(7, 'a'), &e).ok());
  EXPECT_FALSE(DecodeEvent("", &e).ok());
}

TEST(Codec, SeqKeysSortInSeqOrder) {
  EXPECT_LT(SeqKey(255), SeqKey(256));
  EXPECT_LT(SeqKey(1), SeqKey(1ULL << 40));
  EXPECT_EQ(DecodeSeqKey(SeqKey(123456789)), 123456789u);
}

}  // namespace
}  // namespace ledger
