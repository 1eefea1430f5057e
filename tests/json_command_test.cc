#include <gtest/gtest.h>
#include <simdjson.h>

#include <random>

#include "engine/json_command.h"

namespace ledger {
namespace {

// Parses a single command; returns the error message or "" on success.
std::string ErrorOf(const std::string& json, std::string* field = nullptr,
                    bool allow_time = false) {
  ParsedBody body;
  ParseOptions o;
  o.allow_client_time = allow_time;
  if (auto e = ParseBody(json, o, &body)) {
    if (field) *field = e->field;
    return e->message;
  }
  if (body.commands[0].error) {
    if (field) *field = body.commands[0].error->field;
    return body.commands[0].error->message;
  }
  return "";
}

Command Parse(const std::string& json) {
  ParsedBody body;
  EXPECT_FALSE(ParseBody(json, ParseOptions{}, &body).has_value());
  EXPECT_FALSE(body.commands[0].error.has_value()) << body.commands[0].error->message;
  return body.commands[0].command;
}

TEST(JsonCommand, ParsesATopUpWithMetadataKeptAsGiven) {
  Command c = Parse(R"({"type":"top_up","user_id":"alice","amount":1000,"key":"pi_1",
      "metadata": {"emoji": "🚀", "n": 1.50, "nested": {"a": [1, null, true]}}})");
  EXPECT_EQ(c.kind, Kind::kTopUp);
  EXPECT_EQ(c.user_id, "alice");
  EXPECT_EQ(c.amount, 1000);
  EXPECT_EQ(c.key, "pi_1");
  EXPECT_EQ(c.metadata, R"({"emoji":"🚀","n":1.50,"nested":{"a":[1,null,true]}})");
}

TEST(JsonCommand, MisspeltFieldIsNamed) {
  std::string field;
  std::string msg = ErrorOf(R"({"type":"usage","user_id":"a","ammount":5})", &field);
  EXPECT_NE(msg.find("unknown field 'ammount'"), std::string::npos) << msg;
  EXPECT_EQ(field, "ammount");
}

TEST(JsonCommand, FieldOfAnotherTypeIsRejected) {
  std::string field;
  std::string msg = ErrorOf(R"({"type":"usage","user_id":"a","amount":5,"pending":true})", &field);
  EXPECT_EQ(field, "pending");
  EXPECT_NE(msg.find("does not apply"), std::string::npos) << msg;
}

TEST(JsonCommand, WrongTypesAndRangesNameTheField) {
  struct Case {
    const char* json;
    const char* field;
  } cases[] = {
      {R"({"type":"top_up","user_id":"a","amount":"100"})", "amount"},
      {R"({"type":"top_up","user_id":"a","amount":1.5})", "amount"},
      {R"({"type":"top_up","user_id":"a","amount":0})", "amount"},
      {R"({"type":"top_up","user_id":"a","amount":2147483648})", "amount"},
      {R"({"type":"top_up","user_id":"a"})", "amount"},
      {R"({"type":"top_up","amount":5})", "user_id"},
      {R"({"type":"top_up","user_id":"","amount":5})", "user_id"},
      {R"({"type":"top_up","user_id":"a\u0001b","amount":5})", "user_id"},
      {R"({"type":"top_up","user_id":7,"amount":5})", "user_id"},
      {R"({"type":"top_up","user_id":"a","amount":5,"metadata":[1]})", "metadata"},
      {R"({"type":"top_up","user_id":"a","amount":5,"pending":"yes"})", "pending"},
      {R"({"type":"teleport","user_id":"a","amount":5})", "type"},
      {R"({"user_id":"a","amount":5})", "type"},
      {R"({"type":"refund","amount":5})", "payment_key"},
      {R"({"type":"dispute","payment_key":"p","key":"d","amount":5,"status":"lol"})", "status"},
      {R"({"type":"adjust","user_id":"a","balance":5})", "metadata"},
      {R"({"type":"activate","user_id":"a"})", "key"},
      {R"({"type":"usage","user_id":"a","amount":5,"block_id":"b"})", "amount"},
      {R"({"type":"top_up","user_id":"a","amount":5,"time":"2026-01-01T00:00:00Z"})", "time"},
      {R"({"type":"refund_request","payment_key":"p"})", "reason"},
  };
  for (const Case& c : cases) {
    std::string field;
    std::string msg = ErrorOf(c.json, &field);
    EXPECT_FALSE(msg.empty()) << c.json;
    EXPECT_EQ(field, c.field) << c.json << " -> " << msg;
  }
}

TEST(JsonCommand, HugeNumbersFailTheBodyWithAReason) {
  std::string msg = ErrorOf(R"({"type":"top_up","user_id":"a","amount":99999999999999999999999})");
  EXPECT_NE(msg.find("out of range"), std::string::npos) << msg;
}

TEST(JsonCommand, LimitsOnIdsKeysAndMetadata) {
  std::string long_id(129, 'x');
  std::string field;
  ErrorOf(R"({"type":"top_up","user_id":")" + long_id + R"(","amount":5})", &field);
  EXPECT_EQ(field, "user_id");
  ErrorOf(R"({"type":"top_up","user_id":"a","amount":5,"key":")" + long_id + R"("})", &field);
  EXPECT_EQ(field, "key");
  std::string big = R"({"type":"top_up","user_id":"a","amount":5,"metadata":{"x":")" +
                    std::string(65 * 1024, 'y') + R"("}})";
  ErrorOf(big, &field);
  EXPECT_EQ(field, "metadata");
  std::string reason(1025, 'r');
  ErrorOf(R"({"type":"refund_request","payment_key":"p","reason":")" + reason + R"("})", &field);
  EXPECT_EQ(field, "reason");
  // 128 bytes of multi-byte UTF-8 is fine.
  std::string id;
  for (int i = 0; i < 32; ++i) id += "🚀";
  EXPECT_EQ(ErrorOf(R"({"type":"top_up","user_id":")" + id + R"(","amount":5})"), "");
}

TEST(JsonCommand, MalformedJsonFailsTheWholeBody) {
  for (const char* bad : {"", "{", "{\"type\":", "[1,", "{\"a\":1}x", "nul", "\"str\"", "42"}) {
    ParsedBody body;
    EXPECT_TRUE(ParseBody(bad, ParseOptions{}, &body).has_value()) << bad;
  }
  ParsedBody body;
  EXPECT_TRUE(
      ParseBody("{\"type\":\"top_up\",\"user_id\":\"\xff\",\"amount\":1}", ParseOptions{}, &body)
          .has_value());
}

TEST(JsonCommand, BatchCommandsStandAlone) {
  ParsedBody body;
  auto err = ParseBody(R"([
      {"type":"top_up","user_id":"a","amount":5},
      {"type":"top_up","user_id":"a","ammount":5,"metadata":{"deep":{"x":[1,2]}}},
      {"type":"usage","user_id":"b","amount":0}
  ])",
                       ParseOptions{}, &body);
  ASSERT_FALSE(err.has_value()) << err->message;
  ASSERT_TRUE(body.is_batch);
  ASSERT_EQ(body.commands.size(), 3u);
  EXPECT_FALSE(body.commands[0].error.has_value());
  ASSERT_TRUE(body.commands[1].error.has_value());
  EXPECT_EQ(body.commands[1].error->field, "ammount");
  EXPECT_FALSE(body.commands[2].error.has_value());
  EXPECT_EQ(body.commands[2].command.user_id, "b");
}

TEST(JsonCommand, BatchOverTheLimitIsRejected) {
  std::string json = "[";
  for (int i = 0; i < 8193; ++i)
    json += std::string(i ? "," : "") + R"({"type":"grant","user_id":"a","amount":1})";
  json += "]";
  ParsedBody body;
  auto err = ParseBody(json, ParseOptions{}, &body);
  ASSERT_TRUE(err.has_value());
  EXPECT_NE(err->message.find("8192"), std::string::npos);
}

TEST(JsonCommand, ClientTimeOnlyWhenAllowed) {
  std::string field;
  EXPECT_EQ(ErrorOf(R"({"type":"grant","user_id":"a","amount":1,"time":"2026-01-01T00:00:00Z"})",
                    &field, /*allow_time=*/true),
            "");
  EXPECT_NE(
      ErrorOf(R"({"type":"grant","user_id":"a","amount":1,"time":"not a time"})", &field, true),
      "");
  EXPECT_EQ(field, "time");
}

TEST(JsonCommand, NullMeansAbsent) {
  Command c = Parse(R"({"type":"usage","user_id":"a","amount":3,"key":null,"metadata":null})");
  EXPECT_TRUE(c.key.empty());
  EXPECT_EQ(c.metadata, "{}");
}

// What the full parser makes of an object text: its minified form, or
// nullopt when it is not a well-formed JSON object.
std::optional<std::string> ParserMinified(std::string_view text) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(text.data(), text.size(), true).get(doc) != simdjson::SUCCESS ||
      !doc.is_object()) {
    return std::nullopt;
  }
  std::string out(text.size(), '\0');
  size_t len = 0;
  if (simdjson::minify(text.data(), text.size(), out.data(), len) != simdjson::SUCCESS) {
    return std::nullopt;
  }
  out.resize(len);
  return out;
}

TEST(JsonCommand, PlainMinifiedObjectsSkipTheParser) {
  for (std::string_view t :
       {R"({})", R"({"graph_exec_id":"g-1","node_id":"n-7"})", R"({"a":-0,"b":true,"c":false})",
        R"({"d":null,"e":"two words","f":123456789012345,"g":-7})", R"({"a":1,"a":2})"}) {
    EXPECT_TRUE(IsPlainMinifiedObject(t)) << t;
    EXPECT_EQ(ParserMinified(t), std::string(t)) << t;
  }
  // Each of these is left to the parser (some are fine JSON, some are not).
  for (std::string_view t : {R"({ "a":1})",
                             R"({"a": 1})",
                             R"({"a":{"b":1}})",
                             R"({"a":[1]})",
                             R"({"a":"\n"})",
                             R"({"a":"é"})",
                             R"({"a":1.5})",
                             R"({"a":1e3})",
                             R"({"a":1234567890123456})",
                             R"({"a":01})",
                             R"({"a":-})",
                             R"({"a":1,})",
                             R"({"a":1}x)",
                             R"({"a":1} )",
                             R"({"a"})",
                             R"({"a":})",
                             R"([1])",
                             R"({)",
                             R"({"a":tru})",
                             R"({"a":1)",
                             R"({"a)",
                             R"({,})",
                             "",
                             R"({"a":"b)",
                             "{\"a\":\"\x01\"}",
                             R"({a:1})",
                             R"({"a":nulls})",
                             R"({"a":"x"1})"}) {
    EXPECT_FALSE(IsPlainMinifiedObject(t)) << t;
  }
}

// Everything ParseBody answers: the body's error, or each command's error or
// fields.
struct Answer {
  std::optional<ParseError> error;
  ParsedBody body;
  bool operator==(const Answer&) const = default;
  bool AllAccepted() const {
    for (const ParsedCommand& pc : body.commands) {
      if (pc.error) return false;
    }
    return !error;
  }
};

Answer AnswerTo(const std::string& body, bool validate_first) {
  ParseOptions o;
  o.allow_client_time = true;
  o.validate_whole_body_first = validate_first;
  Answer a;
  a.error = ParseBody(body, o, &a.body);
  if (a.error) a.body = ParsedBody{};  // what it holds after a body error is not an answer
  return a;
}

TEST(JsonCommand, OneOnDemandPassAnswersAsValidatingTheWholeBodyFirst) {
  // Bodies of valid commands, then each broken in small ways (a byte
  // dropped, doubled or replaced by a JSON piece, a cut, something after
  // the end): reading an error-free body in one On-Demand pass must answer
  // exactly as checking it whole with the DOM parser first, the body's
  // error, each command's error and every field alike.
  static const std::string kCommands[] = {
      R"({"type":"usage","user_id":"u-1","amount":7,"metadata":{"graph_exec_id":"g-1","node_id":"n-7"}})",
      R"({"type":"top_up","user_id":"u-2","key":"pi_1","amount":1000,"metadata":{"a":{"b":[1,2.5]}}})",
      R"({ "type" : "refund_request", "payment_key" : "pi_1", "reason" : "r\u00e9\n" })",
      R"({"type":"activate","user_id":"u-2","key":"pi_1","new_key":"pi_2","metadata":null})",
      R"({"type":"grant","user_id":"u-3","amount":5,"time":"2026-01-31T12:00:00Z","pending":true})",
      R"({"type":"usage","user_id":"u-4","block_id":"llm","inputs":{"credentials":{"provider":"x"}}})",
      R"({"type":"adjust","user_id":"u-5","balance":-3,"metadata":{"reason":"fix"}})",
      R"({"type":"dispute","payment_key":"pi_1","key":"dp_1","amount":3,"status":"lost"})",
  };
  static constexpr std::string_view kPieces[] = {"{",
                                                 "}",
                                                 "[",
                                                 "]",
                                                 "\"",
                                                 ":",
                                                 ",",
                                                 " ",
                                                 "1",
                                                 "-",
                                                 ".5",
                                                 "e9",
                                                 "true",
                                                 "nul",
                                                 "\\",
                                                 "\x01",
                                                 "\xff",
                                                 "x",
                                                 "99999999999999999999"};
  // Broken inside metadata, where On-Demand skips by brackets alone.
  for (const char* body :
       {R"({"type":"usage","user_id":"u","amount":1,"metadata":{"a":[1 1]}})",
        R"({"type":"usage","user_id":"u","amount":1,"metadata":{"a":{"b":1,}}})",
        R"([{"type":"usage","user_id":"u","amount":1,"metadata":{"a":{"b" 1}}}])",
        R"({"type":"usage","user_id":"u","amount":1,"metadata":{"a":{"b":tru}}})",
        R"({"type":"usage","user_id":"u","amount":1,"metadata":{"a":[1,2}]}})"}) {
    for (bool validate_first : {false, true}) {
      Answer a = AnswerTo(body, validate_first);
      ASSERT_TRUE(a.error.has_value()) << body;
      EXPECT_EQ(a.error->message, "malformed JSON") << body;
      EXPECT_EQ(a.error->field, "") << body;
    }
  }
  std::mt19937 rng(11);
  int same_valid = 0;
  for (int round = 0; round < 30000; ++round) {
    std::string body;
    if (rng() % 3 == 0) {
      body = kCommands[rng() % std::size(kCommands)];
    } else {
      body = "[";
      for (int n = 1 + static_cast<int>(rng() % 3); n > 0; --n) {
        body += kCommands[rng() % std::size(kCommands)] + std::string(n > 1 ? "," : "");
      }
      body += "]";
    }
    for (int edits = static_cast<int>(rng() % 3); edits > 0; --edits) {
      size_t at = rng() % (body.size() + 1);
      switch (rng() % 5) {
        case 0:
          if (at < body.size()) body.erase(at, 1);
          break;
        case 1:
          if (at < body.size()) body.insert(at, 1, body[at]);
          break;
        case 2:
          body.insert(at, kPieces[rng() % std::size(kPieces)]);
          break;
        case 3:
          body.resize(at);
          break;
        default:
          body += kPieces[rng() % std::size(kPieces)];
      }
    }
    Answer fast = AnswerTo(body, false);
    ASSERT_TRUE(fast == AnswerTo(body, true)) << body;
    if (fast.AllAccepted()) ++same_valid;
  }
  // Both kinds of answer are reached.
  EXPECT_GT(same_valid, 3000);
}

TEST(JsonCommand, MetadataNormalizesAsTheParserWouldOnRandomTexts) {
  // Texts built from JSON's pieces, most of them almost objects: wherever
  // the fast path says yes the parser agrees and the text is its own
  // minified form, and NormalizeJsonObject answers as the parser does.
  static constexpr std::string_view kPieces[] = {
      "{",  "}",       "\"k\"",        "\"v w\"", ":",     ",",    "1",   "-", "0",
      "12", ".5",      "e2",           "true",    "false", "null", "nul", " ", "[",
      "]",  "\"\\n\"", "\"\xc3\xa9\"", "\"",      "x"};
  std::mt19937 rng(7);
  int fast = 0;
  for (int round = 0; round < 20000; ++round) {
    std::string t = "{";
    int pieces = static_cast<int>(rng() % 12);
    for (int p = 0; p < pieces; ++p) {
      // Mostly the shape of an object: key, colon, value, comma.
      switch (rng() % 4) {
        case 0:
          t += "\"k" + std::to_string(rng() % 3) + "\"";
          break;
        case 1:
          t += ":";
          break;
        case 2:
          t += ",";
          break;
        default:
          t += kPieces[rng() % std::size(kPieces)];
      }
    }
    if (rng() % 4 != 0) t += "}";
    std::optional<std::string> expected = ParserMinified(t);
    if (IsPlainMinifiedObject(t)) {
      ++fast;
      ASSERT_EQ(expected, t) << t;
    }
    std::string out;
    auto e = NormalizeJsonObject(t, "metadata", 1 << 20, &out);
    ASSERT_EQ(e.has_value(), !expected.has_value()) << t;
    if (expected) {
      EXPECT_EQ(out, *expected) << t;
    }
  }
  EXPECT_GT(fast, 100);  // the generator reaches the fast path
}

}  // namespace
}  // namespace ledger
