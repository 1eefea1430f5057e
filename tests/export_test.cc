#include "engine/export.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "engine/time_format.h"
#include "tests/json_view.h"

namespace ledger {
using testing::Json;
namespace {

// A projection of `n` users with balances from a few values (many ties);
// every id has a comma, which CSV must quote.
void Fill(Projection* p, int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (int i = 0; i < n; ++i) {
    UserState s;
    s.balance = static_cast<Amount>(rng() % 7) * 100 - 200;
    s.updated_at = s.balance == 0 ? 0 : 1'700'000'000'000'000 + i;
    p->Publish("u" + std::to_string(rng() % 100000) + "," + std::to_string(i), s);
  }
}

std::vector<const UserEntry*> ById(const Projection& p) {
  std::vector<const UserEntry*> users;
  for (const UserEntry& u : p.users()) users.push_back(&u);
  std::sort(users.begin(), users.end(),
            [](const UserEntry* a, const UserEntry* b) { return a->user_id < b->user_id; });
  return users;
}

TEST(TopUsers, TheHighestBalancesFirstTiesByUserIdForEveryLimit) {
  Projection p;
  Fill(&p, 500, 7);
  std::vector<std::pair<Amount, std::string>> all;
  for (const UserEntry& u : p.users()) all.emplace_back(-u.state.balance, u.user_id);
  std::sort(all.begin(), all.end());
  for (size_t limit : {size_t{0}, size_t{1}, size_t{7}, size_t{499}, size_t{500}, size_t{1000}}) {
    Json j(TopUsersJson(p, limit));
    size_t n = std::min(limit, all.size());
    ASSERT_EQ(j.Size("/users"), n) << limit;
    for (size_t i = 0; i < n; ++i) {
      std::string at = "/users/" + std::to_string(i);
      EXPECT_EQ(j.Str(at + "/user_id"), all[i].second) << limit << " " << i;
      EXPECT_EQ(j.Int(at + "/balance"), -all[i].first) << limit << " " << i;
    }
  }
}

TEST(Export, ACopyFormatsEveryUserInIdOrderWithTheSeqAndHash) {
  // What the server does: a copy under the lock, formatted after.
  Projection p;
  Fill(&p, 300, 11);
  p.SetLastSeq(4242, 300);
  std::vector<const UserEntry*> users = ById(p);

  Json j(FormatExport(CopyForExport(p), ExportFormat::kJson));
  EXPECT_EQ(j.Int("/seq"), 4242);
  EXPECT_EQ(j.Str("/state_hash"), HexHash(p.state_hash()));
  ASSERT_EQ(j.Size("/users"), users.size());
  for (size_t i = 0; i < users.size(); ++i) {
    std::string at = "/users/" + std::to_string(i);
    EXPECT_EQ(j.Str(at + "/user_id"), users[i]->user_id);
    EXPECT_EQ(j.Int(at + "/balance"), users[i]->state.balance);
    if (users[i]->state.updated_at == 0) {
      EXPECT_TRUE(j.IsNull(at + "/updated_at"));
    } else {
      EXPECT_EQ(j.Str(at + "/updated_at"), FormatTime(users[i]->state.updated_at));
    }
  }

  std::string csv = "user_id,balance,updated_at\n";
  for (const UserEntry* u : users) {
    csv += "\"" + u->user_id + "\"," + std::to_string(u->state.balance) + "," +
           (u->state.updated_at ? FormatTime(u->state.updated_at) : "") + "\n";
  }
  EXPECT_EQ(FormatExport(CopyForExport(p), ExportFormat::kCsv), csv);

  std::string nd = FormatExport(CopyForExport(p), ExportFormat::kNdjson);
  size_t at = 0;
  for (const UserEntry* u : users) {
    size_t end = nd.find('\n', at);
    ASSERT_NE(end, std::string::npos);
    Json row(nd.substr(at, end - at));
    EXPECT_EQ(row.Str("/user_id"), u->user_id);
    EXPECT_EQ(row.Int("/balance"), u->state.balance);
    at = end + 1;
  }
  EXPECT_EQ(at, nd.size());
  // The tools' one-step export (ledger-read, ledger-replay) says the same.
  EXPECT_EQ(ExportUsers(p, ExportFormat::kCsv), csv);
}

}  // namespace
}  // namespace ledger
