#include "engine/json_writer.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace ledger
