// A minimal JSON writer: appends to a string, escapes per RFC 8259. Callers
// place commas with Key()/Sep(); raw JSON (already valid, e.g. stored
// metadata) goes in with Raw(). It writes to a std::string (JsonWriter) or,
// on hot paths, to a StackAppender in front of one: each std::string append
// is an out-of-line call with a capacity check, and an answer is ~30 of
// them.
#pragma once

#include <charconv>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "engine/text.h"
#include "engine/time_format.h"

namespace ledger {

// Collects appends in a buffer on the stack and moves them to `out` in one
// append when full and at its end. The string is complete only after the
// appender is gone (or Flush()).
class StackAppender {
 public:
  explicit StackAppender(std::string* out) : out_(out) {}
  ~StackAppender() { Flush(); }
  StackAppender(const StackAppender&) = delete;
  StackAppender& operator=(const StackAppender&) = delete;

  // Inlined into the writer's calls, where the lengths of keys and
  // literals are constants and the copy becomes a few moves.
  [[gnu::always_inline]] void push_back(char c) {
    if (n_ == kBytes) Flush();
    buf_[n_++] = c;
  }
  [[gnu::always_inline]] void append(const char* p, size_t len) {
    if (len > kBytes - n_) {
      Spill(p, len);
      return;
    }
    std::memcpy(buf_ + n_, p, len);
    n_ += len;
  }
  void append(std::string_view s) { append(s.data(), s.size()); }
  void Flush() {
    out_->append(buf_, n_);
    n_ = 0;
  }

 private:
  // What does not fit: the buffer goes out first, then a piece larger than
  // the whole buffer goes straight after it.
  [[gnu::noinline]] void Spill(const char* p, size_t len) {
    Flush();
    if (len > kBytes) {
      out_->append(p, len);
    } else {
      std::memcpy(buf_, p, len);
      n_ = len;
    }
  }

  static constexpr size_t kBytes = 512;
  std::string* out_;
  size_t n_ = 0;
  char buf_[kBytes];
};

// A JSON string: quotes, and escapes for what JSON requires.
template <typename Out>
void AppendJsonString(std::string_view s, Out* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  // Runs of characters that need no escape (nearly all of them) go in whole.
  size_t run = 0;
  for (size_t i = FindJsonSpecial(s, 0); i < s.size(); i = FindJsonSpecial(s, i + 1)) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    out->append(s.data() + run, i - run);
    run = i + 1;
    char esc[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 15]};
    size_t len = 2;
    switch (c) {
      case '"':
        esc[1] = '"';
        break;
      case '\\':
        esc[1] = '\\';
        break;
      case '\n':
        esc[1] = 'n';
        break;
      case '\r':
        esc[1] = 'r';
        break;
      case '\t':
        esc[1] = 't';
        break;
      case '\b':
        esc[1] = 'b';
        break;
      case '\f':
        esc[1] = 'f';
        break;
      default:
        len = 6;
    }
    out->append(esc, len);
  }
  out->append(s.data() + run, s.size() - run);
  out->push_back('"');
}

template <typename Out>
class BasicJsonWriter {
 public:
  explicit BasicJsonWriter(Out* out) : out_(out) {}

  BasicJsonWriter& BeginObject() {
    Value();
    out_->push_back('{');
    first_ = true;
    return *this;
  }
  BasicJsonWriter& EndObject() {
    out_->push_back('}');
    first_ = false;
    return *this;
  }
  BasicJsonWriter& BeginArray() {
    Value();
    out_->push_back('[');
    first_ = true;
    return *this;
  }
  BasicJsonWriter& EndArray() {
    out_->push_back(']');
    first_ = false;
    return *this;
  }

  // `k` is one of our field names: it needs no escaping.
  [[gnu::always_inline]] BasicJsonWriter& Key(std::string_view k) {
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
      out_->append(k.data(), k.size());
      out_->append("\":", 2);
    }
    after_key_ = true;
    return *this;
  }
  BasicJsonWriter& String(std::string_view s) {
    Value();
    AppendJsonString(s, out_);
    return *this;
  }
  // Text known to need no escaping (names of types and codes).
  BasicJsonWriter& PlainString(std::string_view s) {
    Value();
    out_->push_back('"');
    out_->append(s.data(), s.size());
    out_->push_back('"');
    return *this;
  }
  // A time as RFC 3339 text in UTC with microseconds.
  BasicJsonWriter& Time(TimeUs time_us) {
    Value();
    char buf[kTimeTextBytesMax + 2];
    buf[0] = '"';
    size_t n = FormatTimeTo(time_us, buf + 1);
    buf[n + 1] = '"';
    out_->append(buf, n + 2);
    return *this;
  }
  BasicJsonWriter& Int(int64_t v) {
    Value();
    AppendNumber(v);
    return *this;
  }
  BasicJsonWriter& Uint(uint64_t v) {
    Value();
    AppendNumber(v);
    return *this;
  }
  BasicJsonWriter& Bool(bool v) {
    Value();
    out_->append(v ? std::string_view("true") : std::string_view("false"));
    return *this;
  }
  BasicJsonWriter& Null() {
    Value();
    out_->append(std::string_view("null"));
    return *this;
  }
  BasicJsonWriter& Raw(std::string_view json) {
    Value();
    out_->append(json.data(), json.size());
    return *this;
  }

 private:
  [[gnu::always_inline]] void Value() {
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
  Out* out_;
  bool first_ = true;
  bool after_key_ = false;
};

using JsonWriter = BasicJsonWriter<std::string>;

}  // namespace ledger
