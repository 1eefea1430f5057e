#include "engine/views.h"

#include <simdjson.h>

#include <map>
#include <unordered_map>

#include "engine/json_writer.h"
#include "engine/text.h"
#include "engine/time_format.h"

namespace ledger {

namespace {

inline constexpr size_t kEvidenceHistory = 20;
inline constexpr const char* kApprovedText =
    "The refund request has been approved, the amount will be credited back to your account.";

Status LoadTx(LogStore* store, Seq seq, StoredTx* tx) {
  Status s = store->ReadEvent(seq, &tx->event);
  if (!s.ok()) return s;
  tx->activation.reset();
  if (!tx->event.active && (tx->event.kind == Kind::kTopUp || tx->event.kind == Kind::kGrant)) {
    auto entry = store->GetKey(tx->event.user_id, tx->event.key);
    if (entry && entry->seq == seq && entry->activation_seq != 0) {
      tx->activation.emplace();
      s = store->ReadEvent(entry->activation_seq, &*tx->activation);
      if (!s.ok()) return s;
    }
  }
  return Status::Ok();
}

// Type and active filters; the time bounds are applied by ReadHistory's scan
// (newest first, so it can stop at `since`).
bool Matches(const StoredTx& tx, const HistoryQuery& q) {
  if (q.kind && tx.event.kind != *q.kind) return false;
  bool active = tx.event.active || tx.activation.has_value();
  return !q.active || active == *q.active;
}

// Visits the user's events newest first (bounded by kHistoryScanMax).
template <typename Fn>
Status ForEachUserEvent(LogStore* store, std::string_view user_id, Fn fn) {
  Seq seq = 0;
  Status s = store->NewestUserSeq(user_id, 0, &seq);
  for (size_t scanned = 0; s.ok() && seq != 0 && scanned < kHistoryScanMax; ++scanned) {
    StoredTx tx;
    s = LoadTx(store, seq, &tx);
    if (!s.ok()) return s;
    s = LogStore::PreviousUserSeq(tx.event, user_id, &seq);
    if (tx.event.kind == Kind::kActivate) continue;  // shown in the event it activates
    if (!fn(tx)) break;
  }
  return s;
}

// The usage's graph execution, from its metadata ("" when it names none).
std::string GraphExecId(const Event& e) {
  if (e.kind != Kind::kUsage || e.metadata.find("graph_exec_id") == std::string::npos) return {};
  thread_local simdjson::dom::parser parser;
  std::string_view id;
  if (parser.parse(e.metadata)["graph_exec_id"].get(id) != simdjson::SUCCESS) return {};
  return std::string(id);
}

}  // namespace

std::optional<std::string> ParseHistoryQuery(
    const std::function<const std::string*(std::string_view)>& get, HistoryQuery* q) {
  std::optional<std::string> bad;
  auto fail = [&](const char* name) {
    if (!bad) bad = name;
  };
  if (const std::string* v = get("limit")) {
    auto n = ParseDecimal(*v);
    if (!n || *n < 1 || *n > kHistoryLimitMax) fail("limit");
    if (n) q->limit = *n;
  }
  if (const std::string* v = get("before_seq")) {
    auto n = ParseDecimal(*v);
    if (!n || *n < 1) fail("before_seq");
    if (n) q->before_seq = *n;
  }
  if (const std::string* v = get("type")) {
    q->kind = KindFromName(*v);
    if (!q->kind) fail("type");
  }
  if (const std::string* v = get("active")) {
    if (*v == "true" || *v == "false") {
      q->active = *v == "true";
    } else {
      fail("active");
    }
  }
  for (const char* name : {"since", "until"}) {
    if (const std::string* v = get(name)) {
      auto t = ParseTime(*v);
      if (!t) fail(name);
      (std::string_view(name) == "since" ? q->since_us : q->until_us) = t.value_or(0);
    }
  }
  if (const std::string* v = get("group_by")) {
    if (*v != "graph_exec_id") fail("group_by");
    q->group_by_graph_exec = *v == "graph_exec_id";
  }
  return bad;
}

Status ReadHistory(LogStore* store, std::string_view user_id, const HistoryQuery& q,
                   HistoryPage* page) {
  page->items.clear();
  page->groups.clear();
  page->next_before_seq.reset();
  size_t limit = q.limit == 0 ? 1 : std::min(q.limit, kHistoryLimitMax);
  std::unordered_map<std::string, size_t> line_of_exec;  // graph_exec_id -> line
  Seq consumed = 0;                                      // the oldest seq this page accounts for
  bool reached_since = false;
  Seq seq = 0;  // the next event examined; 0: no older one
  Status s = store->NewestUserSeq(user_id, q.before_seq, &seq);
  if (!s.ok()) return s;
  for (size_t scanned = 0; seq != 0 && scanned < kHistoryScanMax; ++scanned) {
    // Ungrouped, a full page is final; grouped, the older events of the
    // page's executions still join their lines until a new line would start.
    if (!q.group_by_graph_exec && page->items.size() == limit) break;
    StoredTx tx;
    s = LoadTx(store, seq, &tx);
    if (!s.ok()) return s;
    if (q.since_us != 0 && tx.event.time_us < q.since_us) {
      reached_since = true;  // every older event is older still
      break;
    }
    Seq older = 0;
    s = LogStore::PreviousUserSeq(tx.event, user_id, &older);
    if (!s.ok()) return s;
    if ((q.until_us != 0 && tx.event.time_us > q.until_us) || !Matches(tx, q) ||
        tx.event.kind == Kind::kActivate) {  // an activation shows in the event it activates
      consumed = seq;
      seq = older;
      continue;
    }
    std::string exec_id = q.group_by_graph_exec ? GraphExecId(tx.event) : std::string();
    auto line = exec_id.empty() ? line_of_exec.end() : line_of_exec.find(exec_id);
    if (line != line_of_exec.end()) {
      UsageGroup& g = page->groups[line->second];
      ++g.node_count;
      g.amount += tx.event.amount;
      g.applied += tx.event.applied;
      g.first_time = tx.event.time_us;
      g.first_seq = seq;
      consumed = seq;
      seq = older;
      continue;
    }
    if (page->items.size() == limit) break;  // this event starts the next page
    UsageGroup g;
    if (!exec_id.empty()) {
      line_of_exec.emplace(exec_id, page->items.size());
      g.graph_exec_id = std::move(exec_id);
      g.node_count = 1;
      g.amount = tx.event.amount;
      g.applied = tx.event.applied;
      g.first_time = tx.event.time_us;
      g.first_seq = seq;
    }
    page->items.push_back(std::move(tx));
    page->groups.push_back(std::move(g));
    consumed = seq;
    seq = older;
  }
  // More may follow (`seq` is the newest event not accounted for): page on
  // from the oldest seq accounted for.
  if (!reached_since && consumed != 0 && seq != 0) page->next_before_seq = consumed;
  return Status::Ok();
}

void AppendTransactionJson(const StoredTx& tx, std::string* out, const UsageGroup* group) {
  const Event& e = tx.event;
  const Event* act = tx.activation ? &*tx.activation : nullptr;
  JsonWriter w(out);
  w.BeginObject();
  w.Key("seq").Uint(e.seq);
  w.Key("time").Time(e.time_us);
  w.Key("user_id").String(e.user_id);
  w.Key("type").PlainString(KindName(e.kind));
  w.Key("key").String(act ? act->key : e.key);
  if (group != nullptr && group->graph_exec_id.empty()) group = nullptr;
  w.Key("amount").Int(group ? group->amount : e.amount);
  w.Key("applied").Int(group ? group->applied : act ? act->applied : e.applied);
  w.Key("running_balance").Int(act ? act->running_balance : e.running_balance);
  w.Key("active").Bool(act ? true : e.active);
  w.Key("metadata").Raw(act ? act->metadata : e.metadata);
  if (act) {
    w.Key("activated_seq").Uint(act->seq);
    w.Key("activated_at").Time(act->time_us);
  }
  if (!e.ref_key.empty()) w.Key("payment_key").String(e.ref_key);
  if (!e.status.empty()) w.Key("status").String(e.status);
  if (!e.reason.empty()) w.Key("reason").String(e.reason);
  if (!e.decision.empty()) w.Key("decision").String(e.decision);
  if (e.has_ceiling) w.Key("ceiling").Int(e.ceiling);
  if (!e.block_id.empty()) {
    w.Key("block_id").String(e.block_id);
    w.Key("rule");
    if (e.rule_index < 0) {
      w.Null();
    } else {
      w.Int(e.rule_index);
    }
  }
  if (e.allow_negative) w.Key("allow_negative").Bool(true);
  if (group) {
    w.Key("graph_exec_id").String(group->graph_exec_id);
    w.Key("node_count").Uint(group->node_count);
    w.Key("first_seq").Uint(group->first_seq);
    w.Key("first_time").Time(group->first_time);
    w.Key("last_time").Time(e.time_us);
  }
  w.EndObject();
}

Status RefundRequestsJson(LogStore* store, std::string_view user_id, std::string* out) {
  // Newest first: a request is approved when a refund of its top-up came after it.
  std::map<Seq, Seq> last_refund;  // top-up seq -> seq of the newest refund seen so far
  std::string items;
  JsonWriter list(&items);
  list.BeginArray();
  Status s = ForEachUserEvent(store, user_id, [&](const StoredTx& tx) {
    const Event& e = tx.event;
    if (e.kind == Kind::kRefund && !last_refund.count(e.ref_seq)) last_refund[e.ref_seq] = e.seq;
    if (e.kind != Kind::kRefundRequest) return true;
    auto it = last_refund.find(e.ref_seq);
    bool approved = it != last_refund.end() && it->second > e.seq;
    std::string one;
    JsonWriter w(&one);
    w.BeginObject();
    w.Key("seq").Uint(e.seq).Key("time").Time(e.time_us);
    w.Key("user_id").String(e.user_id).Key("key").String(e.key);
    w.Key("payment_key").String(e.ref_key).Key("amount").Int(-e.amount);
    w.Key("reason").String(e.reason).Key("decision").String(e.decision);
    w.Key("status").String(approved ? "approved" : "pending");
    w.Key("result");
    if (approved) {
      w.String(kApprovedText);
      w.Key("refund_seq").Uint(it->second);
    } else {
      w.Null();
    }
    w.Key("metadata").Raw(e.metadata);
    w.EndObject();
    list.Raw(one);
    return true;
  });
  if (!s.ok()) return s;
  list.EndArray();
  out->append("{\"refund_requests\":");
  out->append(items);
  out->append("}");
  return Status::Ok();
}

Status DisputesJson(LogStore* store, std::string_view user_id, std::string* out) {
  struct Dispute {
    std::vector<Event> changes;  // newest first
  };
  std::map<std::string, Dispute> by_key;
  std::vector<std::string> order;  // newest first by latest change
  Status s = ForEachUserEvent(store, user_id, [&](const StoredTx& tx) {
    if (tx.event.kind != Kind::kDispute) return true;
    auto [it, fresh] = by_key.try_emplace(tx.event.key);
    if (fresh) order.push_back(tx.event.key);
    it->second.changes.push_back(tx.event);
    return true;
  });
  if (!s.ok()) return s;
  JsonWriter w(out);
  w.BeginObject().Key("disputes").BeginArray();
  for (const std::string& key : order) {
    const auto& changes = by_key[key].changes;
    const Event& last = changes.front();
    w.BeginObject();
    w.Key("key").String(key).Key("user_id").String(last.user_id);
    w.Key("payment_key").String(last.ref_key).Key("amount").Int(-last.amount);
    w.Key("status").String(last.status);
    w.Key("open").Bool(IsOpenDisputeStatus(last.status));
    w.Key("applied").Int(last.status == "lost" ? last.applied : 0);
    w.Key("updated_at").Time(last.time_us).Key("seq").Uint(last.seq);
    w.Key("history").BeginArray();
    for (auto it = changes.rbegin(); it != changes.rend(); ++it) {
      w.BeginObject().Key("seq").Uint(it->seq).Key("time").Time(it->time_us);
      w.Key("status").String(it->status);
      if (!it->decision.empty()) w.Key("decision").String(it->decision);
      w.EndObject();
    }
    w.EndArray().EndObject();
  }
  w.EndArray().EndObject();
  return Status::Ok();
}

std::string EvidenceJson(LogStore* store, std::string_view user_id, Seq payment_seq) {
  std::string out;
  JsonWriter w(&out);
  w.BeginObject().Key("top_up");
  StoredTx topup;
  if (LoadTx(store, payment_seq, &topup).ok()) {
    std::string tx;
    AppendTransactionJson(topup, &tx);
    w.Raw(tx);
  } else {
    w.Null();
  }
  w.Key("recent").BeginArray();
  HistoryQuery q;
  q.limit = kEvidenceHistory;
  HistoryPage page;
  if (ReadHistory(store, user_id, q, &page).ok()) {
    for (const StoredTx& tx : page.items) {
      std::string one;
      AppendTransactionJson(tx, &one);
      w.Raw(one);
    }
  }
  w.EndArray().EndObject();
  return out;
}

std::string HistoryPageJson(const HistoryPage& page) {
  std::string body = "{\"transactions\":[";
  for (size_t i = 0; i < page.items.size(); ++i) {
    if (i) body.push_back(',');
    AppendTransactionJson(page.items[i], &body, i < page.groups.size() ? &page.groups[i] : nullptr);
  }
  body += "],\"next_before_seq\":";
  body += page.next_before_seq ? std::to_string(*page.next_before_seq) : "null";
  body += "}";
  return body;
}

Status ReadBalanceAt(LogStore* store, std::string_view user_id, Seq at_seq, TimeUs at_us,
                     BalancePoint* out) {
  *out = BalancePoint{};
  // Newest first from the point: the first event found sets balance and seq,
  // the first that moved the balance sets updated_at.
  Seq seq = 0;
  Status s = store->NewestUserSeq(user_id, at_seq != 0 ? at_seq + 1 : 0, &seq);
  while (s.ok() && seq != 0) {
    Event e;
    s = store->ReadEvent(seq, &e);
    if (!s.ok()) return s;
    if (at_us == 0 || e.time_us <= at_us) {
      if (!out->exists) {
        out->exists = true;
        out->balance = e.running_balance;
        out->seq = seq;
      }
      if (MovesBalance(e)) {
        out->updated_at = e.time_us;
        return Status::Ok();
      }
    }
    s = LogStore::PreviousUserSeq(e, user_id, &seq);
  }
  return s;
}

std::string BalanceJson(std::string_view user_id, const BalancePoint& point) {
  std::string body;
  JsonWriter w(&body);
  w.BeginObject().Key("user_id").String(user_id).Key("balance").Int(point.balance);
  w.Key("updated_at");
  if (point.updated_at == 0) {
    w.Null();
  } else {
    w.Time(point.updated_at);
  }
  w.Key("seq").Uint(point.seq).EndObject();
  return body;
}

}  // namespace ledger
