// Writes the Cap'n Proto seed corpus (fuzz/corpus/capnp). Run once by hand:
//   ./build/make_fuzz_seeds fuzz/corpus/capnp
#include <fstream>
#include <string>

#include "engine/capnp_batch.h"

int main(int argc, char** argv) {
  if (argc != 2) return 2;
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
  return 0;
}
