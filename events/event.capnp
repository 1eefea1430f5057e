@0xd0e6e120785fdcf9;
# The event log's record payload. One Event per accepted command.
# Field numbers are the wire format: never renumber, only append.

enum Kind {
  topUp @0;
  grant @1;
  usage @2;
  refund @3;
  refundRequest @4;
  dispute @5;
  adjust @6;
  activate @7;
}

struct Event {
  seq @0 :UInt64;
  timeUs @1 :Int64;          # microseconds since the Unix epoch, UTC
  userId @2 :Text;
  kind @3 :Kind;
  key @4 :Text;
  amount @5 :Int64;          # signed as the command moves the balance
  applied @6 :Int64;         # what actually moved, after clamping
  runningBalance @7 :Int64;  # balance after this event
  active @8 :Bool;
  metadata @9 :Text;         # minified JSON object, as given

  refSeq @10 :UInt64;        # refund/refund_request/dispute: the top-up; activate: the pending event
  refKey @11 :Text;          # payment_key, or the pending event's key for activate
  status @12 :Text;          # dispute status
  reason @13 :Text;          # refund_request reason
  newKey @14 :Text;          # activate: the pending event's new key
  hasCeiling @15 :Bool;
  ceiling @16 :Int64;
  blockId @17 :Text;         # priced usage
  ruleIndex @18 :Int32 = -1; # priced usage: index of the matched rule
  allowNegative @19 :Bool;
  decision @20 :Text;        # refund_request: auto_refund|manual_review; dispute: accept|contest
  prevUserSeq @21 :UInt64;   # the same user's previous event (0: this is the user's first);
                             # the user's history follows these links, the fold checks them
}

struct Batch {
  # Binary ingestion (application/x-capnp): a batch of commands in, results out.
  commands @0 :List(Command);
}

struct Command {
  type @0 :Text;
  userId @1 :Text;
  key @2 :Text;
  amount @3 :Int64;
  hasAmount @4 :Bool;
  metadata @5 :Text;         # JSON object text; empty means {}
  pending @6 :Bool;
  ceiling @7 :Int64;
  hasCeiling @8 :Bool;
  allowNegative @9 :Bool;
  paymentKey @10 :Text;
  status @11 :Text;
  reason @12 :Text;
  newKey @13 :Text;
  balance @14 :Int64;
  hasBalance @15 :Bool;
  blockId @16 :Text;
  inputs @17 :Text;          # JSON object text
  timeUs @18 :Int64;
  hasTime @19 :Bool;
}

struct Results {
  results @0 :List(Result);
}

struct Result {
  ok @0 :Bool;
  json @1 :Text;             # the same result object the JSON API gives; with
                             # ?results=compact, unset when the fields below
                             # say all of it
  seq @2 :UInt64;
  balance @3 :Int64;
  errorCode @4 :Text;
  amount @5 :Int64;          # signed as it moves the balance, as in the JSON
  applied @6 :Int64;
  timeUs @7 :Int64;          # the event's time, microseconds since the epoch
  duplicate @8 :Bool;        # an earlier command's result (same key)
}
