// A minimal JSON writer: appends to a string, escapes per RFC 8259. Callers
// place commas with Key()/Sep(); raw JSON (already valid, e.g. stored
// metadata) goes in with Raw().
#pragma once

#include <charconv>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "engine/time_format.h"

namespace ledger {

void AppendJsonString(std::string_view s, std::string* out);

class JsonWriter {
 public:
  explicit JsonWriter(std::string* out) : out_(out) {}

  JsonWriter& BeginObject() {
    Value();
    out_->push_back('{');
    first_ = true;
    return *this;
  }
  JsonWriter& EndObject() {
    out_->push_back('}');
    first_ = false;
    return *this;
  }
  JsonWriter& BeginArray() {
    Value();
    out_->push_back('[');
    first_ = true;
    return *this;
  }
  JsonWriter& EndArray() {
    out_->push_back(']');
    first_ = false;
    return *this;
  }

  // `k` is one of our field names: it needs no escaping.
  JsonWriter& Key(std::string_view k) {
    // `,"k":` in one append (four appends cost a capacity check each, and
    // keys are most of an answer's pieces); a key too long for the buffer
    // goes in after its opening.
    char buf[48];
    size_t n = 0;
    if (!first_) buf[n++] = ',';
    buf[n++] = '"';
    if (n + k.size() + 2 <= sizeof buf) {
      std::memcpy(buf + n, k.data(), k.size());
      n += k.size();
      buf[n++] = '"';
      buf[n++] = ':';
      out_->append(buf, n);
    } else {
      out_->append(buf, n);
      out_->append(k);
      out_->append("\":", 2);
    }
    after_key_ = true;
    return *this;
  }
  JsonWriter& String(std::string_view s) {
    Value();
    AppendJsonString(s, out_);
    return *this;
  }
  // Text known to need no escaping (names of types and codes).
  JsonWriter& PlainString(std::string_view s) {
    Value();
    out_->push_back('"');
    out_->append(s);
    out_->push_back('"');
    return *this;
  }
  // A time as RFC 3339 text in UTC with microseconds.
  JsonWriter& Time(TimeUs time_us) {
    Value();
    out_->push_back('"');
    AppendTime(time_us, out_);
    out_->push_back('"');
    return *this;
  }
  JsonWriter& Int(int64_t v) {
    Value();
    AppendNumber(v);
    return *this;
  }
  JsonWriter& Uint(uint64_t v) {
    Value();
    AppendNumber(v);
    return *this;
  }
  JsonWriter& Bool(bool v) {
    Value();
    out_->append(v ? "true" : "false");
    return *this;
  }
  JsonWriter& Null() {
    Value();
    out_->append("null");
    return *this;
  }
  JsonWriter& Raw(std::string_view json) {
    Value();
    out_->append(json);
    return *this;
  }

 private:
  void Value() {
    if (after_key_) {
      after_key_ = false;
    } else if (!first_) {
      out_->push_back(',');
    }
    first_ = false;
  }
  template <typename T>
  void AppendNumber(T v) {
    char buf[24];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
    out_->append(buf, static_cast<size_t>(end - buf));
  }
  std::string* out_;
  bool first_ = true;
  bool after_key_ = false;
};

}  // namespace ledger
