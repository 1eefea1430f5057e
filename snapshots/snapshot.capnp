@0xb1f4a0c2d3e5f607;
# Snapshot of the projection at a seq. Stored in the `snapshots` column family
# under key seq (8 bytes BE) || part (4 bytes BE): part 0 is the header, parts
# 1..chunkCount hold the users. Every value is a Cap'n Proto message followed
# by its 8-byte XXH3-64 checksum; the header also lists each chunk's checksum.

struct SnapshotHeader {
  seq @0 :UInt64;           # the last event folded into this state
  stateHash @1 :UInt64;     # the projection's state hash at seq
  logChecksum @2 :UInt64;   # checksum of the log record at seq (ties it to the log)
  eventCount @3 :UInt64;
  userCount @4 :UInt64;
  chunkChecksums @5 :List(UInt64);
  boundsMin @6 :Int64;
  boundsMax @7 :Int64;
  createdUs @8 :Int64;
}

struct SnapshotChunk {
  users @0 :List(UserRecord);
}

struct UserRecord {
  userId @0 :Text;
  balance @1 :Int64;
  updatedAt @2 :Int64;
  lastTime @3 :Int64;
  lastSeq @4 :UInt64;
  pending @5 :List(SeqAmount);        # pending top-up/grant seq -> amount
  refunded @6 :List(SeqAmount);       # top-up seq -> refunds + lost disputes
  openRequests @7 :List(SeqAmount);   # top-up seq -> refund_request seq (in amount)
  disputes @8 :List(DisputeRecord);
}

struct SeqAmount {
  seq @0 :UInt64;
  amount @1 :Int64;
}

struct DisputeRecord {
  key @0 :Text;
  paymentSeq @1 :UInt64;
  amount @2 :Int64;
  status @3 :Text;
  seq @4 :UInt64;
}
