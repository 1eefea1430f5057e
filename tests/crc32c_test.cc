#include "engine/crc32c.h"

#include <dlfcn.h>
#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <filesystem>
#include <random>
#include <string>

namespace ledger {
namespace {

uint32_t Crc(std::string_view s) { return rocksdb::crc32c::Extend(0, s.data(), s.size()); }

TEST(Crc32c, KnownChecksums) {
  // The check value of CRC-32C, and RFC 3720's (iSCSI) test vectors.
  EXPECT_EQ(Crc("123456789"), 0xe3069283u);
  EXPECT_EQ(Crc(""), 0u);
  EXPECT_EQ(Crc(std::string(32, '\0')), 0x8a9136aau);
  EXPECT_EQ(Crc(std::string(32, '\xff')), 0x62a8ab43u);
  std::string ascending, descending;
  for (int i = 0; i < 32; ++i) {
    ascending.push_back(static_cast<char>(i));
    descending.push_back(static_cast<char>(31 - i));
  }
  EXPECT_EQ(Crc(ascending), 0x46dd794eu);
  EXPECT_EQ(Crc(descending), 0x113fdb5cu);
}

TEST(Crc32c, SameAsTheLibrarysOwnAtEveryOffsetAndLength) {
  std::mt19937_64 rng(7);
  std::string buffer(4200, '\0');
  for (char& c : buffer) c = static_cast<char>(rng());
  for (size_t offset = 0; offset < 16; ++offset) {
    for (size_t n = 0; n <= 80; ++n) {
      uint32_t seed = static_cast<uint32_t>(rng());
      ASSERT_EQ(rocksdb::crc32c::Extend(seed, buffer.data() + offset, n),
                LibraryCrc32cExtend(seed, buffer.data() + offset, n))
          << "offset " << offset << ", " << n << " bytes";
    }
  }
  for (size_t n : {size_t{4096}, size_t{4183}}) {
    EXPECT_EQ(rocksdb::crc32c::Extend(0, buffer.data() + 3, n),
              LibraryCrc32cExtend(0, buffer.data() + 3, n));
  }
  // Extended in pieces, the checksum of the whole.
  uint32_t pieces = rocksdb::crc32c::Extend(0, buffer.data(), 1000);
  pieces = rocksdb::crc32c::Extend(pieces, buffer.data() + 1000, 3200);
  EXPECT_EQ(pieces, LibraryCrc32cExtend(0, buffer.data(), 4200));
}

TEST(Crc32c, RocksDbBindsToThisDefinitionAndReadsWhatItWrote) {
  // The name the library's PLT resolves is the executable's definition.
  EXPECT_EQ(::dlsym(RTLD_DEFAULT, "_ZN7rocksdb6crc32c6ExtendEjPKcm"),
            reinterpret_cast<void*>(&rocksdb::crc32c::Extend));
#if defined(__x86_64__)
  EXPECT_EQ(Crc32cInHardware(), __builtin_cpu_supports("sse4.2") != 0);
#endif
  // A WAL and a table file written with it, read back with their
  // checksums verified.
  std::string dir = testing::TempDir() + "/crc32c-" + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  rocksdb::Options options;
  options.create_if_missing = true;
  options.paranoid_checks = true;
  rocksdb::DB* raw = nullptr;
  ASSERT_TRUE(rocksdb::DB::Open(options, dir, &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);
  rocksdb::WriteOptions sync;
  sync.sync = true;
  for (int i = 0; i < 2000; ++i) {
    ASSERT_TRUE(
        db->Put(sync, "key" + std::to_string(i), std::string(100 + i % 50, 'a' + i % 26)).ok());
  }
  ASSERT_TRUE(db->Flush(rocksdb::FlushOptions()).ok());
  ASSERT_TRUE(db->Put(sync, "after", "the flush").ok());
  db.reset();
  ASSERT_TRUE(rocksdb::DB::Open(options, dir, &raw).ok());  // replays the WAL
  db.reset(raw);
  rocksdb::ReadOptions verify;
  verify.verify_checksums = true;
  std::string value;
  ASSERT_TRUE(db->Get(verify, "key1234", &value).ok());
  EXPECT_EQ(value, std::string(100 + 1234 % 50, 'a' + 1234 % 26));
  ASSERT_TRUE(db->Get(verify, "after", &value).ok());
  EXPECT_EQ(value, "the flush");
  EXPECT_TRUE(db->VerifyChecksum().ok());
  db.reset();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ledger
