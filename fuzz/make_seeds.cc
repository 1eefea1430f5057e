// Writes the Cap'n Proto seed corpora: command batches (fuzz/corpus/capnp)
// and log record payloads, packed and not (fuzz/corpus/log). Run once by hand:
//   ./build/make_fuzz_seeds fuzz/corpus/capnp fuzz/corpus/log
#include <fstream>
#include <string>

#include "engine/capnp_batch.h"
#include "events/codec.h"

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  auto cmd = [](ledger::Kind kind, const char* user, int64_t amount) {
    ledger::Command c;
    c.kind = kind;
    c.user_id = user;
    c.amount = amount;
    c.has_amount = true;
    return c;
  };
  std::vector<std::vector<ledger::Command>> seeds;
  seeds.push_back({cmd(ledger::Kind::kTopUp, "alice", 1000)});
  seeds.push_back({cmd(ledger::Kind::kUsage, "bob", 5), cmd(ledger::Kind::kGrant, "bob", 7)});
  ledger::Command refund = cmd(ledger::Kind::kRefund, "", 100);
  refund.payment_key = "pi_1";
  refund.status = "succeeded";
  refund.has_status = true;
  ledger::Command meta = cmd(ledger::Kind::kTopUp, "carol", 5);
  meta.metadata = R"({"a":[1,{"b":null}],"s":"🚀"})";
  meta.has_metadata = true;
  meta.pending = true;
  seeds.push_back({refund, meta});
  ledger::Command adjust = cmd(ledger::Kind::kAdjust, "dave", 0);
  adjust.has_amount = false;
  adjust.has_balance = true;
  adjust.balance = -5;
  adjust.metadata = R"({"reason":"fix"})";
  adjust.has_metadata = true;
  seeds.push_back({adjust});
  for (size_t i = 0; i < seeds.size(); ++i) {
    std::ofstream(std::string(argv[1]) + "/seed" + std::to_string(i) + ".bin", std::ios::binary)
        << ledger::EncodeCommandBatch(seeds[i]);
  }
  ledger::Event usage;
  usage.seq = 42;
  usage.time_us = 1767225600000000;
  usage.user_id = "user-1610";
  usage.kind = ledger::Kind::kUsage;
  usage.key = "ledger:42";
  usage.amount = usage.applied = -7;
  usage.running_balance = 993;
  usage.active = true;
  usage.metadata = R"({"graph_exec_id":"g-1","node_id":"n-7"})";
  usage.prev_user_seq = 17;
  ledger::Event dispute = usage;
  dispute.seq = 43;
  dispute.kind = ledger::Kind::kDispute;
  dispute.key = "dp_1";
  dispute.ref_key = "pi_1";
  dispute.ref_seq = 3;
  dispute.status = "lost";
  dispute.decision = "contest";
  dispute.has_ceiling = true;
  dispute.ceiling = 9000;
  dispute.reason = std::string(300, 'r');
  int n = 0;
  for (const ledger::Event& e : {usage, dispute}) {
    std::string flat, packed;
    ledger::EncodeEvent(e, &flat);
    ledger::PackWords(flat, &packed);
    for (const std::string& payload : {flat, packed}) {
      std::ofstream(std::string(argv[2]) + "/record" + std::to_string(n++) + ".bin",
                    std::ios::binary)
          << payload;
    }
  }
  return 0;
}
