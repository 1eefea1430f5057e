#include "engine/price_table.h"

#include <simdjson.h>

#include <map>
#include <vector>

#include "engine/text.h"

namespace ledger {

namespace {

using simdjson::dom::element;
using simdjson::dom::element_type;

bool Equal(element a, element b);

// `filter` is contained in `value`: for objects every filter field is present
// in value and contained there; anything else must be equal.
bool Contained(element filter, element value) {
  if (filter.type() != element_type::OBJECT) return Equal(filter, value);
  if (value.type() != element_type::OBJECT) return false;
  simdjson::dom::object vo = value.get_object().value_unsafe();
  simdjson::dom::object fo = filter.get_object().value_unsafe();
  for (auto [k, fv] : fo) {
    element v;
    if (vo.at_key(k).get(v) != simdjson::SUCCESS) return false;
    if (!Contained(fv, v)) return false;
  }
  return true;
}

bool Equal(element a, element b) {
  auto ta = a.type(), tb = b.type();
  bool a_num =
      ta == element_type::INT64 || ta == element_type::UINT64 || ta == element_type::DOUBLE;
  bool b_num =
      tb == element_type::INT64 || tb == element_type::UINT64 || tb == element_type::DOUBLE;
  if (a_num && b_num) {
    if (ta == element_type::DOUBLE || tb == element_type::DOUBLE) {
      return double(a) == double(b);
    }
    if (ta == tb)
      return ta == element_type::INT64 ? int64_t(a) == int64_t(b) : uint64_t(a) == uint64_t(b);
    return false;  // int64 vs uint64 (> INT64_MAX): never equal
  }
  if (ta != tb) return false;
  switch (ta) {
    case element_type::STRING:
      return std::string_view(a) == std::string_view(b);
    case element_type::BOOL:
      return bool(a) == bool(b);
    case element_type::NULL_VALUE:
      return true;
    case element_type::ARRAY: {
      auto x = a.get_array().value_unsafe(), y = b.get_array().value_unsafe();
      if (x.size() != y.size()) return false;
      auto i = x.begin(), j = y.begin();
      for (; i != x.end(); ++i, ++j) {
        if (!Equal(*i, *j)) return false;
      }
      return true;
    }
    case element_type::OBJECT: {
      auto x = a.get_object().value_unsafe(), y = b.get_object().value_unsafe();
      if (x.size() != y.size()) return false;
      for (auto [k, v] : x) {
        element w;
        if (y.at_key(k).get(w) != simdjson::SUCCESS || !Equal(v, w)) return false;
      }
      return true;
    }
    default:
      return false;
  }
}

}  // namespace

struct PriceTable::Impl {
  simdjson::dom::parser parser;  // owns the document the rules point into
  struct Rule {
    Amount cost;
    element filter;
  };
  std::map<std::string, std::vector<Rule>, std::less<>> blocks;
};

PriceTable::PriceTable(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PriceTable::~PriceTable() = default;

size_t PriceTable::block_count() const { return impl_->blocks.size(); }

Status PriceTable::Parse(std::string_view json, std::unique_ptr<PriceTable>* out) {
  auto impl = std::make_unique<Impl>();
  element doc;
  if (impl->parser.parse(json.data(), json.size(), true).get(doc) != simdjson::SUCCESS) {
    return Status::Error("price table: malformed JSON");
  }
  simdjson::dom::object blocks;
  if (doc.get_object().get(blocks) != simdjson::SUCCESS) {
    return Status::Error("price table: expected an object of block_id -> rules");
  }
  for (auto [block_id, rules_el] : blocks) {
    std::string where = "price table: block '" + std::string(block_id) + "': ";
    simdjson::dom::array rules;
    if (rules_el.get_array().get(rules) != simdjson::SUCCESS) {
      return Status::Error(where + "expected an array of rules");
    }
    auto& list = impl->blocks[std::string(block_id)];
    for (element rule : rules) {
      int64_t cost;
      if (rule["cost"].get_int64().get(cost) != simdjson::SUCCESS || cost < 0 ||
          cost > 2147483647) {
        return Status::Error(where + "each rule needs an integer 'cost' from 0 to 2147483647");
      }
      element filter;
      if (rule["filter"].get(filter) != simdjson::SUCCESS) {
        return Status::Error(where + "each rule needs a 'filter' object");
      }
      if (!filter.is_object()) return Status::Error(where + "'filter' must be an object");
      list.push_back(Impl::Rule{cost, filter});
    }
  }
  out->reset(new PriceTable(std::move(impl)));
  return Status::Ok();
}

Status PriceTable::Load(const std::string& path, std::unique_ptr<PriceTable>* out) {
  std::string text;
  Status s = ReadWholeFile(path, &text);
  if (!s.ok()) return Status::Error("price table: " + s.message());
  return Parse(text, out);
}

PriceTable::Match PriceTable::Price(std::string_view block_id, std::string_view inputs_json) const {
  auto it = impl_->blocks.find(block_id);
  if (it == impl_->blocks.end()) return {};
  thread_local simdjson::dom::parser parser;
  element inputs;
  if (parser.parse(inputs_json.data(), inputs_json.size(), true).get(inputs) != simdjson::SUCCESS) {
    return {};
  }
  for (size_t i = 0; i < it->second.size(); ++i) {
    if (Contained(it->second[i].filter, inputs)) {
      return Match{it->second[i].cost, static_cast<int32_t>(i)};
    }
  }
  return {};
}

}  // namespace ledger
