#include "engine/capnp_batch.h"

#include <capnp/message.h>
#include <capnp/serialize.h>

#include <cstring>

#include "event.capnp.h"
#include "events/codec.h"

namespace ledger {

namespace {

// Reader limits for a request body: the traversal limit bounds decoding work
// to a small multiple of the body size (16 MiB at most).
capnp::ReaderOptions BodyReaderOptions(size_t bytes) {
  capnp::ReaderOptions o;
  o.traversalLimitInWords = bytes / 8 * 4 + 1024;
  o.nestingLimit = 16;
  return o;
}

// Cap'n Proto reads words in place, so they must be 8-byte aligned. A body
// in its own heap block already is (malloc aligns to 16) and is read where
// it lies; otherwise it is copied into `copy` (uint64_t, since capnp::word
// itself is not copyable).
kj::ArrayPtr<const capnp::word> AlignedWords(std::string_view bytes, std::vector<uint64_t>* copy) {
  size_t n = bytes.size() / sizeof(capnp::word);
  const char* data = bytes.data();
  if (reinterpret_cast<uintptr_t>(data) % alignof(capnp::word) != 0) {
    copy->resize(n);
    std::memcpy(copy->data(), data, n * sizeof(capnp::word));
    data = reinterpret_cast<const char*>(copy->data());
  }
  return kj::ArrayPtr<const capnp::word>(reinterpret_cast<const capnp::word*>(data), n);
}

std::string_view View(capnp::Text::Reader t) { return std::string_view(t.cStr(), t.size()); }
std::string Str(capnp::Text::Reader t) { return std::string(View(t)); }
kj::StringPtr Txt(const std::string& s) { return kj::StringPtr(s.c_str(), s.size()); }

std::string ToBytes(capnp::MessageBuilder& message) {
  std::string out;
  AppendMessage(message, &out);
  return out;
}

std::optional<ParseError> ToCommand(::Command::Reader r, const ParseOptions& options, Command* c) {
  // Each get*() of a text checks its pointer again (an out-of-line call into
  // libcapnp): every text is read once.
  std::string_view type = View(r.getType());
  auto kind = KindFromName(type);
  if (!kind) return ParseError{"unknown type '" + std::string(type.substr(0, 64)) + "'", "type"};
  c->kind = *kind;
  // Texts the client left unset stay empty (a fresh Command); asking has*()
  // first skips get*()'s pointer checks (most of a command's texts are unset).
  if (r.hasUserId()) c->user_id.assign(View(r.getUserId()));
  if (r.hasKey()) c->key.assign(View(r.getKey()));
  c->has_amount = r.getHasAmount();
  c->amount = r.getAmount();
  if (std::string_view metadata = r.hasMetadata() ? View(r.getMetadata()) : std::string_view();
      !metadata.empty()) {
    c->has_metadata = true;
    if (auto e = NormalizeJsonObject(metadata, "metadata", kMetadataBytesMax, &c->metadata)) {
      return e;
    }
  }
  c->pending = r.getPending();
  c->has_ceiling = r.getHasCeiling();
  c->ceiling = r.getCeiling();
  c->allow_negative = r.getAllowNegative();
  if (r.hasPaymentKey()) c->payment_key.assign(View(r.getPaymentKey()));
  if (r.hasStatus()) c->status.assign(View(r.getStatus()));
  c->has_status = !c->status.empty();
  if (r.hasReason()) c->reason.assign(View(r.getReason()));
  if (r.hasNewKey()) c->new_key.assign(View(r.getNewKey()));
  c->has_balance = r.getHasBalance();
  c->balance = r.getBalance();
  if (r.hasBlockId()) c->block_id.assign(View(r.getBlockId()));
  if (std::string_view inputs = r.hasInputs() ? View(r.getInputs()) : std::string_view();
      !inputs.empty()) {
    if (auto e = NormalizeJsonObject(inputs, "inputs", kMetadataBytesMax, &c->inputs)) return e;
  }
  c->has_time = r.getHasTime();
  c->time_us = r.getTimeUs();
  return ValidateCommand(*c, options);
}

}  // namespace

std::optional<ParseError> DecodeCommandBatch(std::string_view bytes, const ParseOptions& options,
                                             std::vector<ParsedCommand>* out) {
  out->clear();
  if (bytes.empty() || bytes.size() % sizeof(capnp::word) != 0) {
    return ParseError{"body is not a Cap'n Proto message (size not a multiple of 8)", ""};
  }
  std::vector<uint64_t> copy;
  try {
    capnp::FlatArrayMessageReader reader(AlignedWords(bytes, &copy),
                                         BodyReaderOptions(bytes.size()));
    auto commands = reader.getRoot<::Batch>().getCommands();
    if (commands.size() > kBatchCommandsMax) {
      return ParseError{"a batch holds at most 8192 commands", ""};
    }
    out->reserve(commands.size());
    for (auto r : commands) {
      // Built where it stays: a Command is ~20 fields to move.
      ParsedCommand& pc = out->emplace_back();
      if (auto e = ToCommand(r, options, &pc.command)) pc.error = std::move(e);
    }
  } catch (const kj::Exception& e) {
    return ParseError{std::string("malformed Cap'n Proto batch: ") + e.getDescription().cStr(), ""};
  }
  return std::nullopt;
}

bool FieldsSayAll(const Outcome& o) {
  if (!o.ok() || o.skipped || o.already_active || o.priced || !o.decision.empty() ||
      !o.evidence_json.empty() || o.needs_evidence) {
    return false;
  }
  switch (o.kind) {
    case Kind::kTopUp:
    case Kind::kGrant:
    case Kind::kUsage:
    case Kind::kAdjust:
      break;
    default:
      return false;  // the user or key may come from the payment or the pending event
  }
  // A key the command did not give is "ledger:<seq>", unless that text was
  // taken and a suffix was added (which only the JSON says).
  char generated[kGeneratedKeyBytesMax];
  return std::string_view(o.key).substr(0, kGeneratedKeyPrefix.size()) != kGeneratedKeyPrefix ||
         o.key == FormatGeneratedKey(o.seq, 0, generated);
}

// The Results message, written directly (as EncodeEvent writes events):
// the root struct (one pointer), a composite list of Result structs (6 data
// words: ok at bit 0 and duplicate at bit 1, seq, balance, amount, applied,
// timeUs; 2 pointers: json, errorCode), then each result's texts in order.
// Byte for byte what Cap'n Proto's builder writes with a first segment large
// enough (capnp_batch_test compares them); the builder cost ~600
// instructions a result on top of its JSON.
std::string EncodeResults(const std::vector<Outcome>& outcomes, ResultsForm form) {
  constexpr uint32_t kDataWords = 6;
  constexpr uint32_t kPointers = 2;
  static_assert(::Result::_capnpPrivate::dataWordSize == kDataWords &&
                    ::Result::_capnpPrivate::pointerCount == kPointers &&
                    ::Results::_capnpPrivate::dataWordSize == 0 &&
                    ::Results::_capnpPrivate::pointerCount == 1,
                "event.capnp's Results changed: update EncodeResults");
  constexpr size_t kElementWords = kDataWords + kPointers;
  size_t n = outcomes.size();
  bool compact = form == ResultsForm::kCompact;
  std::string out;
  out.reserve(8 + (3 + n * kElementWords) * 8 + (compact ? 0 : n * kOutcomeJsonBytes));
  // The root pointer, the root struct's pointer, the list's tag, the elements;
  // the texts are appended after them, and the segment table's size is set
  // once they are in.
  size_t at = AppendCapnpSegment(3 + n * kElementWords, &out);
  auto segment = [&] { return out.data() + at; };             // (appending may move it)
  StoreLittleEndian<uint32_t>(segment() + 4, 0u | 1u << 16);  // root: 0 data words, 1 pointer
  // The list: offset 0 (right after the pointer), tag 1; element size 7
  // (composite) and its size in words.
  StoreLittleEndian<uint32_t>(segment() + 8, 1);
  StoreLittleEndian<uint32_t>(segment() + 12, 7 | static_cast<uint32_t>(n * kElementWords) << 3);
  // The tag: the element count (in the offset bits), then each one's size.
  StoreLittleEndian<uint32_t>(segment() + 16, static_cast<uint32_t>(n) << 2);
  StoreLittleEndian<uint32_t>(segment() + 20, kDataWords | kPointers << 16);
  // Appends a text (written by `write`) and points `pointer_word` to it.
  auto add_text = [&](size_t pointer_word, auto write) {
    size_t text_word = (out.size() - at) / 8;
    write();
    size_t bytes = out.size() - at - text_word * 8;
    out.resize(at + (text_word + CapnpTextWords(bytes)) * 8);  // its NUL and padding
    PointCapnpText(segment(), pointer_word, text_word, bytes);
  };
  for (size_t i = 0; i < n; ++i) {
    const Outcome& o = outcomes[i];
    size_t element = 3 + i * kElementWords;
    if (!compact || !FieldsSayAll(o)) {
      add_text(element + kDataWords, [&] { AppendOutcomeJson(o, &out); });
    }
    if (!o.ok()) {
      add_text(element + kDataWords + 1, [&] { out.append(ErrorCodeName(o.code)); });
    }
    char* data = segment() + element * 8;
    data[0] = static_cast<char>((o.ok() ? 1 : 0) | (o.duplicate ? 2 : 0));
    StoreLittleEndian<uint64_t>(data + 8, o.seq);
    StoreLittleEndian<int64_t>(data + 16, o.balance);
    StoreLittleEndian<int64_t>(data + 24, o.amount);
    StoreLittleEndian<int64_t>(data + 32, o.applied);
    StoreLittleEndian<int64_t>(data + 40, o.time_us);
  }
  StoreLittleEndian<uint32_t>(out.data() + at - 4, static_cast<uint32_t>((out.size() - at) / 8));
  return out;
}

std::string EncodeCommandBatch(const std::vector<Command>& commands) {
  // The whole batch in one first segment: with the default small first
  // segment, the texts land in later segments than the command list, and
  // the server resolves a far pointer (a segment lookup) for each of them.
  // A Command is 5 data words and 10 pointers; a text is its bytes and NUL.
  constexpr size_t kCommandWords = 5 + 10;
  auto text = [](std::string_view t) { return t.size() / 8 + 1; };
  size_t words = 8;  // the root and the list's tag
  for (const Command& c : commands) {
    words += kCommandWords + text(KindName(c.kind)) + text(c.user_id) + text(c.key) +
             text(c.metadata) + text(c.payment_key) + text(c.status) + text(c.reason) +
             text(c.new_key) + text(c.block_id) + text(c.inputs);
  }
  capnp::MallocMessageBuilder message(static_cast<unsigned>(words));
  auto list = message.initRoot<::Batch>().initCommands(static_cast<unsigned>(commands.size()));
  for (size_t i = 0; i < commands.size(); ++i) {
    const Command& c = commands[i];
    auto b = list[static_cast<unsigned>(i)];
    b.setType(Txt(std::string(KindName(c.kind))));
    // Empty texts are left unset: fewer bytes, and nothing for the reader
    // to follow.
    b.setUserId(Txt(c.user_id));
    if (!c.key.empty()) b.setKey(Txt(c.key));
    b.setHasAmount(c.has_amount);
    b.setAmount(c.amount);
    if (c.has_metadata) b.setMetadata(Txt(c.metadata));
    b.setPending(c.pending);
    b.setHasCeiling(c.has_ceiling);
    b.setCeiling(c.ceiling);
    b.setAllowNegative(c.allow_negative);
    if (!c.payment_key.empty()) b.setPaymentKey(Txt(c.payment_key));
    if (c.has_status) b.setStatus(Txt(c.status));
    if (!c.reason.empty()) b.setReason(Txt(c.reason));
    if (!c.new_key.empty()) b.setNewKey(Txt(c.new_key));
    b.setHasBalance(c.has_balance);
    b.setBalance(c.balance);
    if (!c.block_id.empty()) b.setBlockId(Txt(c.block_id));
    if (!c.inputs.empty()) b.setInputs(Txt(c.inputs));
    b.setHasTime(c.has_time);
    b.setTimeUs(c.time_us);
  }
  return ToBytes(message);
}

namespace {

// Runs `fn` on each result of a Results message; the reason it is not one.
template <typename Fn>
std::optional<std::string> ForEachResult(std::string_view bytes, Fn fn) {
  if (bytes.empty() || bytes.size() % sizeof(capnp::word) != 0) return "not a Cap'n Proto message";
  std::vector<uint64_t> copy;
  try {
    capnp::FlatArrayMessageReader reader(AlignedWords(bytes, &copy),
                                         BodyReaderOptions(bytes.size()));
    for (auto r : reader.getRoot<::Results>().getResults()) fn(r);
  } catch (const kj::Exception& e) {
    return std::string(e.getDescription().cStr());
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string> DecodeResults(std::string_view bytes, std::vector<DecodedResult>* out) {
  return ForEachResult(bytes, [&](::Result::Reader r) {
    out->push_back(DecodedResult{r.getOk(), Str(r.getJson()), r.getSeq(), r.getBalance(),
                                 Str(r.getErrorCode()), r.getAmount(), r.getApplied(),
                                 r.getTimeUs(), r.getDuplicate()});
  });
}

std::optional<std::string> CountResults(std::string_view bytes, size_t* ok, size_t* rejected) {
  return ForEachResult(bytes, [&](::Result::Reader r) { ++(r.getOk() ? *ok : *rejected); });
}

}  // namespace ledger
