#include "engine/views.h"

#include <map>

#include "engine/json_writer.h"
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
  Seq before = 0;
  size_t scanned = 0;
  while (scanned < kHistoryScanMax) {
    std::vector<Seq> seqs = store->UserSeqs(user_id, before, 256);
    if (seqs.empty()) break;
    for (Seq seq : seqs) {
      StoredTx tx;
      Status s = LoadTx(store, seq, &tx);
      if (!s.ok()) return s;
      ++scanned;
      if (!fn(tx)) return Status::Ok();
    }
    before = seqs.back();
  }
  return Status::Ok();
}

}  // namespace

Status ReadHistory(LogStore* store, std::string_view user_id, const HistoryQuery& q,
                   HistoryPage* page) {
  page->items.clear();
  page->next_before_seq.reset();
  Seq before = q.before_seq;
  size_t scanned = 0;
  size_t limit = q.limit == 0 ? 1 : std::min(q.limit, kHistoryLimitMax);
  while (page->items.size() < limit && scanned < kHistoryScanMax) {
    std::vector<Seq> seqs = store->UserSeqs(user_id, before, std::max<size_t>(limit, 64));
    if (seqs.empty()) return Status::Ok();
    for (Seq seq : seqs) {
      ++scanned;
      before = seq;
      StoredTx tx;
      Status s = LoadTx(store, seq, &tx);
      if (!s.ok()) return s;
      if (q.until_us != 0 && tx.event.time_us > q.until_us) continue;
      if (q.since_us != 0 && tx.event.time_us < q.since_us) return Status::Ok();  // older only
      if (!Matches(tx, q)) continue;
      page->items.push_back(std::move(tx));
      if (page->items.size() == limit) break;
    }
  }
  // More may follow: page on from the last seq examined.
  if (!store->UserSeqs(user_id, before, 1).empty()) page->next_before_seq = before;
  return Status::Ok();
}

void AppendTransactionJson(const StoredTx& tx, std::string* out) {
  const Event& e = tx.event;
  const Event* act = tx.activation ? &*tx.activation : nullptr;
  JsonWriter w(out);
  w.BeginObject();
  w.Key("seq").Uint(e.seq);
  w.Key("time").String(FormatTime(e.time_us));
  w.Key("user_id").String(e.user_id);
  w.Key("type").String(KindName(e.kind));
  w.Key("key").String(act ? act->key : e.key);
  w.Key("amount").Int(e.amount);
  w.Key("applied").Int(act ? act->applied : e.applied);
  w.Key("running_balance").Int(act ? act->running_balance : e.running_balance);
  w.Key("active").Bool(act ? true : e.active);
  w.Key("metadata").Raw(act ? act->metadata : e.metadata);
  if (act) {
    w.Key("activated_seq").Uint(act->seq);
    w.Key("activated_at").String(FormatTime(act->time_us));
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
    w.Key("seq").Uint(e.seq).Key("time").String(FormatTime(e.time_us));
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
    w.Key("updated_at").String(FormatTime(last.time_us)).Key("seq").Uint(last.seq);
    w.Key("history").BeginArray();
    for (auto it = changes.rbegin(); it != changes.rend(); ++it) {
      w.BeginObject().Key("seq").Uint(it->seq).Key("time").String(FormatTime(it->time_us));
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

}  // namespace ledger
