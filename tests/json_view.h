// A parsed JSON document for tests; fields by JSON pointer ("/error/code").
#pragma once

#include <gtest/gtest.h>
#include <simdjson.h>

#include <string>

namespace ledger::testing {

class Json {
 public:
  explicit Json(const std::string& text) : text_(text) {
    if (parser_.parse(text_).get(root_) != simdjson::SUCCESS) {
      ADD_FAILURE() << "not JSON: " << text;
    }
  }
  int64_t Int(const std::string& ptr) const {
    int64_t v = 0;
    EXPECT_EQ(root_.at_pointer(ptr).get_int64().get(v), simdjson::SUCCESS)
        << ptr << " in " << text_;
    return v;
  }
  std::string Str(const std::string& ptr) const {
    std::string_view v;
    EXPECT_EQ(root_.at_pointer(ptr).get_string().get(v), simdjson::SUCCESS)
        << ptr << " in " << text_;
    return std::string(v);
  }
  bool Bool(const std::string& ptr) const {
    bool v = false;
    EXPECT_EQ(root_.at_pointer(ptr).get_bool().get(v), simdjson::SUCCESS) << ptr << " in " << text_;
    return v;
  }
  bool Has(const std::string& ptr) const {
    return root_.at_pointer(ptr).error() == simdjson::SUCCESS;
  }
  bool IsNull(const std::string& ptr) const {
    simdjson::dom::element e;
    return root_.at_pointer(ptr).get(e) == simdjson::SUCCESS && e.is_null();
  }
  size_t Size(const std::string& ptr) const {
    simdjson::dom::array a;
    EXPECT_EQ(root_.at_pointer(ptr).get_array().get(a), simdjson::SUCCESS) << ptr;
    return a.size();
  }

 private:
  std::string text_;
  simdjson::dom::parser parser_;
  simdjson::dom::element root_;
};

}  // namespace ledger::testing
