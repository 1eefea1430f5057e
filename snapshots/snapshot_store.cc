#include "snapshots/snapshot_store.h"

#include <capnp/message.h>
#include <capnp/serialize.h>

#include <cstring>
#include <memory>

#include "events/codec.h"
#include "snapshot.capnp.h"

namespace ledger {

namespace {

kj::StringPtr Txt(const std::string& s) { return kj::StringPtr(s.c_str(), s.size()); }

// Message bytes + 8-byte little-endian XXH3 of them.
std::string Seal(capnp::MessageBuilder& message, uint64_t* checksum) {
  std::string out;
  AppendMessage(message, &out);
  uint64_t sum = AppendChecksum(&out, 0, 0);  // XXH3 seeded with 0 is plain XXH3
  if (checksum) *checksum = sum;
  return out;
}

// Checks and strips the checksum; copies the payload into aligned words.
Status Unseal(const std::string& value, std::vector<uint64_t>* words, uint64_t* checksum,
              const std::string& where) {
  if (value.size() < 16 || (value.size() - 8) % 8 != 0) {
    return Status::Error(where + ": impossible size " + std::to_string(value.size()));
  }
  size_t n = value.size() - 8;
  uint64_t stored = StoredChecksum(value);
  if (ChainChecksum(std::string_view(value).substr(0, n), 0) != stored) {
    return Status::Error(where + ": checksum mismatch");
  }
  words->resize(n / 8);
  std::memcpy(words->data(), value.data(), n);
  *checksum = stored;
  return Status::Ok();
}

capnp::ReaderOptions SnapshotReaderOptions(size_t bytes) {
  capnp::ReaderOptions o;
  o.traversalLimitInWords = bytes / 8 * 2 + 1024;
  o.nestingLimit = 16;
  return o;
}

kj::ArrayPtr<const capnp::word> Words(const std::vector<uint64_t>& v) {
  return kj::ArrayPtr<const capnp::word>(reinterpret_cast<const capnp::word*>(v.data()), v.size());
}

void EncodeUser(const UserEntry& u, ::UserRecord::Builder b) {
  const UserState& s = u.state;
  b.setUserId(Txt(u.user_id));
  b.setBalance(s.balance);
  b.setUpdatedAt(s.updated_at);
  b.setLastTime(s.last_time);
  b.setLastSeq(s.last_seq);
  if (!s.extras) return;
  const UserExtras& x = *s.extras;
  auto put = [](auto list, const auto& map) {
    unsigned i = 0;
    for (const auto& [k, v] : map) {
      list[i].setSeq(k);
      list[i].setAmount(static_cast<int64_t>(v));
      ++i;
    }
  };
  put(b.initPending(static_cast<unsigned>(x.pending.size())), x.pending);
  put(b.initRefunded(static_cast<unsigned>(x.refunded.size())), x.refunded);
  put(b.initOpenRequests(static_cast<unsigned>(x.open_requests.size())), x.open_requests);
  auto disputes = b.initDisputes(static_cast<unsigned>(x.open_disputes.size()));
  unsigned i = 0;
  for (const auto& [key, d] : x.open_disputes) {
    disputes[i].setKey(Txt(key));
    disputes[i].setPaymentSeq(d.payment_seq);
    disputes[i].setAmount(d.amount);
    disputes[i].setStatus(Txt(d.status));
    disputes[i].setSeq(d.seq);
    ++i;
  }
}

UserState DecodeUser(::UserRecord::Reader r) {
  UserState s;
  s.balance = r.getBalance();
  s.updated_at = r.getUpdatedAt();
  s.last_time = r.getLastTime();
  s.last_seq = r.getLastSeq();
  if (r.hasPending() || r.hasRefunded() || r.hasOpenRequests() || r.hasDisputes()) {
    UserExtras& x = s.MutableExtras();
    for (auto p : r.getPending()) x.pending[p.getSeq()] = p.getAmount();
    for (auto p : r.getRefunded()) x.refunded[p.getSeq()] = p.getAmount();
    for (auto p : r.getOpenRequests())
      x.open_requests[p.getSeq()] = static_cast<Seq>(p.getAmount());
    for (auto d : r.getDisputes()) {
      x.open_disputes[std::string(d.getKey().cStr(), d.getKey().size())] =
          DisputeState{d.getPaymentSeq(), d.getAmount(),
                       std::string(d.getStatus().cStr(), d.getStatus().size()), d.getSeq()};
    }
    if (x.empty()) s.extras.reset();
  }
  return s;
}

Status ReadHeader(const std::string& value, Seq seq, SnapshotInfo* info,
                  std::vector<uint64_t>* chunk_checksums) {
  std::string where = "snapshot at seq " + std::to_string(seq) + ": header";
  std::vector<uint64_t> words;
  uint64_t checksum = 0;
  Status s = Unseal(value, &words, &checksum, where);
  if (!s.ok()) return s;
  try {
    capnp::FlatArrayMessageReader reader(Words(words), SnapshotReaderOptions(value.size()));
    auto h = reader.getRoot<::SnapshotHeader>();
    if (h.getSeq() != seq) return Status::Error(where + " holds seq " + std::to_string(h.getSeq()));
    info->seq = h.getSeq();
    info->state_hash = h.getStateHash();
    info->log_checksum = h.getLogChecksum();
    info->event_count = h.getEventCount();
    info->user_count = h.getUserCount();
    info->created_us = h.getCreatedUs();
    info->bounds = Bounds{h.getBoundsMin(), h.getBoundsMax()};
    info->bytes = value.size();
    chunk_checksums->clear();
    for (uint64_t c : h.getChunkChecksums()) chunk_checksums->push_back(c);
  } catch (const kj::Exception& e) {
    return Status::Error(where + ": " + e.getDescription().cStr());
  }
  return Status::Ok();
}

}  // namespace

std::string SnapshotKey(Seq seq, uint32_t part) {
  std::string k = SeqKey(seq);
  for (int i = 3; i >= 0; --i) k.push_back(static_cast<char>((part >> (8 * i)) & 0xff));
  return k;
}

Status WriteSnapshot(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, SnapshotInfo* info,
                     const ChunkSource& source) {
  rocksdb::WriteOptions unlogged;
  unlogged.disableWAL = true;  // flushed below, before the header makes them count
  std::vector<uint64_t> checksums;
  std::vector<UserEntry> chunk;
  uint64_t users = 0;
  info->bytes = 0;
  for (uint32_t part = 1;; ++part) {
    chunk.clear();
    if (!source(&chunk)) break;
    capnp::MallocMessageBuilder message;
    auto list = message.initRoot<::SnapshotChunk>().initUsers(static_cast<unsigned>(chunk.size()));
    for (size_t i = 0; i < chunk.size(); ++i) EncodeUser(chunk[i], list[static_cast<unsigned>(i)]);
    uint64_t sum = 0;
    std::string value = Seal(message, &sum);
    checksums.push_back(sum);
    users += chunk.size();
    info->bytes += value.size();
    rocksdb::Status s = db->Put(unlogged, cf, SnapshotKey(info->seq, part), value);
    if (!s.ok()) return Status::Error("snapshot write failed: " + s.ToString());
  }
  if (users != info->user_count) {
    return Status::Error("snapshot copied " + std::to_string(users) + " users, expected " +
                         std::to_string(info->user_count));
  }
  rocksdb::Status s = db->Flush(rocksdb::FlushOptions(), cf);
  if (!s.ok()) return Status::Error("snapshot flush failed: " + s.ToString());
  capnp::MallocMessageBuilder message;
  auto h = message.initRoot<::SnapshotHeader>();
  h.setSeq(info->seq);
  h.setStateHash(info->state_hash);
  h.setLogChecksum(info->log_checksum);
  h.setEventCount(info->event_count);
  h.setUserCount(info->user_count);
  h.setBoundsMin(info->bounds.min);
  h.setBoundsMax(info->bounds.max);
  h.setCreatedUs(info->created_us);
  auto list = h.initChunkChecksums(static_cast<unsigned>(checksums.size()));
  for (size_t i = 0; i < checksums.size(); ++i) list.set(static_cast<unsigned>(i), checksums[i]);
  std::string header = Seal(message, nullptr);
  info->bytes += header.size();
  // The header too goes to a table file rather than the WAL. A read-only
  // opener beside the server (ledger-replay, ledger-read) takes the table
  // files from the manifest and then reads the WAL: a header in the WAL could
  // be seen with a manifest older than the chunks' flush, a snapshot without
  // its chunks. Through flushes, any manifest that has the header has them.
  s = db->Put(unlogged, cf, SnapshotKey(info->seq, 0), header);
  if (!s.ok()) return Status::Error("snapshot header write failed: " + s.ToString());
  s = db->Flush(rocksdb::FlushOptions(), cf);
  if (!s.ok()) return Status::Error("snapshot header flush failed: " + s.ToString());
  return Status::Ok();
}

std::vector<SnapshotInfo> ListSnapshots(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf,
                                        std::vector<std::string>* problems) {
  std::vector<SnapshotInfo> out;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), cf));
  for (it->SeekToLast(); it->Valid(); it->Prev()) {
    rocksdb::Slice k = it->key();
    if (k.size() != 12) continue;
    uint32_t part = 0;
    for (int i = 8; i < 12; ++i) part = (part << 8) | static_cast<uint8_t>(k[i]);
    if (part != 0) continue;
    Seq seq = DecodeSeqKey(std::string_view(k.data(), 8));
    SnapshotInfo info;
    std::vector<uint64_t> checksums;
    Status s = ReadHeader(it->value().ToString(), seq, &info, &checksums);
    if (!s.ok()) {
      if (problems) problems->push_back(s.message());
      continue;
    }
    out.push_back(info);
  }
  return out;
}

Status LoadSnapshot(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, Seq seq,
                    Projection* projection, SnapshotInfo* info) {
  std::string where = "snapshot at seq " + std::to_string(seq);
  std::string value;
  rocksdb::Status rs = db->Get(rocksdb::ReadOptions(), cf, SnapshotKey(seq, 0), &value);
  if (!rs.ok()) return Status::Error(where + ": no header: " + rs.ToString());
  std::vector<uint64_t> checksums;
  Status s = ReadHeader(value, seq, info, &checksums);
  if (!s.ok()) return s;
  if (info->bounds.min != projection->bounds().min ||
      info->bounds.max != projection->bounds().max) {
    return Status::Error(where + ": written with other balance bounds");
  }
  std::vector<uint64_t> words;
  for (size_t c = 0; c < checksums.size(); ++c) {
    std::string part_where = where + ": chunk " + std::to_string(c + 1);
    rs =
        db->Get(rocksdb::ReadOptions(), cf, SnapshotKey(seq, static_cast<uint32_t>(c + 1)), &value);
    if (!rs.ok()) return Status::Error(part_where + " missing");
    uint64_t sum = 0;
    s = Unseal(value, &words, &sum, part_where);
    if (!s.ok()) return s;
    if (sum != checksums[c]) return Status::Error(part_where + ": not the chunk the header lists");
    try {
      capnp::FlatArrayMessageReader reader(Words(words), SnapshotReaderOptions(value.size()));
      for (auto u : reader.getRoot<::SnapshotChunk>().getUsers()) {
        projection->Restore(std::string(u.getUserId().cStr(), u.getUserId().size()), DecodeUser(u));
      }
    } catch (const kj::Exception& e) {
      return Status::Error(part_where + ": " + e.getDescription().cStr());
    }
  }
  if (projection->user_count() != info->user_count) {
    return Status::Error(where + ": holds " + std::to_string(projection->user_count()) +
                         " users, header says " + std::to_string(info->user_count));
  }
  if (projection->state_hash() != info->state_hash) {
    return Status::Error(where + ": state hash of the loaded users differs from the header's");
  }
  projection->SetRestoredPosition(info->seq, info->event_count);
  return Status::Ok();
}

Status PruneSnapshots(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, size_t keep) {
  std::vector<SnapshotInfo> all = ListSnapshots(db, cf);
  if (all.size() <= keep) return Status::Ok();
  // Everything below the oldest kept snapshot goes, headerless parts included.
  Seq oldest_kept = all[keep - 1].seq;
  rocksdb::Status s =
      db->DeleteRange(rocksdb::WriteOptions(), cf, SnapshotKey(0, 0), SnapshotKey(oldest_kept, 0));
  if (!s.ok()) return Status::Error("snapshot prune failed: " + s.ToString());
  return Status::Ok();
}

}  // namespace ledger
