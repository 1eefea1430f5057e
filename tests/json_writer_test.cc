#include "engine/json_writer.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace ledger
