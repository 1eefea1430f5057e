#include "engine/json_writer.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace ledger {
namespace {

TEST(JsonWriter, EscapesOnlyWhatJsonNeeds) {
  std::string out;
  AppendJsonString("plain \"q\" back\\slash\nnl\ttab\x01\x1f é", &out);
  EXPECT_EQ(out, "\"plain \\\"q\\\" back\\\\slash\\nnl\\ttab\\u0001\\u001f é\"");
  out.clear();
  AppendJsonString("", &out);
  EXPECT_EQ(out, "\"\"");
  out.clear();
  JsonWriter w(&out);
  w.BeginObject().Key("a").Int(-9223372036854775807LL - 1).Key("b").Uint(18446744073709551615ULL);
  w.EndObject();
  EXPECT_EQ(out, "{\"a\":-9223372036854775808,\"b\":18446744073709551615}");
  out.clear();
  JsonWriter t(&out);
  t.BeginObject().Key("type").PlainString("top_up").Key("time").Time(1769860800000001);
  t.Key("none").Null().EndObject();
  EXPECT_EQ(out, "{\"type\":\"top_up\",\"time\":\"2026-01-31T12:00:00.000001Z\",\"none\":null}");
}

TEST(JsonWriter, OnTheStackWritesWhatItWouldWriteToTheString) {
  // Short pieces across the stack buffer's edge, an escape at the edge and
  // pieces longer than the whole buffer: the same bytes either way.
  auto write = [](auto& w) {
    w.BeginArray();
    for (int i = 0; i < 300; ++i) {
      w.BeginObject().Key("i").Int(i).Key("s").String(i % 7 ? "ab\"c" : "x\n").Key("t");
      w.Time(1769860800000000 + i * 400000).EndObject();
    }
    w.String(std::string(2000, 'y') + "\t" + std::string(700, 'z'));
    w.Raw(std::string(1500, '1')).EndArray();
  };
  std::string plain;
  JsonWriter direct(&plain);
  write(direct);
  std::string staged = "prefix:";
  {
    StackAppender sink(&staged);
    BasicJsonWriter<StackAppender> w(&sink);
    write(w);
  }
  EXPECT_GT(plain.size(), 20000u);
  EXPECT_EQ(staged, "prefix:" + plain);
}

// The word-at-a-time scan finds what a byte-by-byte one finds: every byte
// value, at every position of a word and past words, from every start.
TEST(JsonWriter, FindJsonSpecialAgreesWithAByteLoop) {
  auto by_bytes = [](std::string_view s, size_t from, bool ascii_only) {
    for (size_t i = from; i < s.size(); ++i) {
      unsigned char c = static_cast<unsigned char>(s[i]);
      if (c < 0x20 || c == '"' || c == '\\' || (ascii_only && c >= 0x7f)) return i;
    }
    return s.size();
  };
  for (int b = 0; b < 256; ++b) {
    for (size_t at = 0; at < 20; ++at) {
      std::string s(20, 'a');
      s[at] = static_cast<char>(b);
      for (bool ascii : {false, true}) {
        for (size_t from : {size_t{0}, size_t{3}, at}) {
          ASSERT_EQ(FindJsonSpecial(s, from, ascii), by_bytes(s, from, ascii))
              << "byte " << b << " at " << at << " from " << from << " ascii " << ascii;
        }
      }
    }
  }
  // Bytes just below and above the special ones next to each other (where a
  // borrow from one byte could show in the next).
  std::mt19937 rng(11);
  const unsigned char pool[] = {0x00, 0x1f, 0x20, 0x21, '"',  0x23, 0x5b, '\\', 0x5d,
                                0x7e, 0x7f, 0x80, 0x81, 0xa2, 0xdc, 0xff, 'x'};
  for (int round = 0; round < 20000; ++round) {
    std::string s(rng() % 40, 'x');
    for (char& c : s) {
      if (rng() % 3 == 0) c = static_cast<char>(pool[rng() % sizeof(pool)]);
    }
    size_t from = s.empty() ? 0 : rng() % s.size();
    for (bool ascii : {false, true}) {
      ASSERT_EQ(FindJsonSpecial(s, from, ascii), by_bytes(s, from, ascii)) << round;
    }
  }
}

}  // namespace
}  // namespace ledger
