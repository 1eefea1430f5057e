// RocksDB's CRC32C on the CPU's own instruction.
//
// Debian builds librocksdb portable, without SSE4.2: its CRC32C, over every
// WAL record it writes and every table block it writes or reads, is a
// table-driven loop (slice-by-4, about 1.4 cycles a byte). In Cap'n Proto
// batches that loop was 11% of the write thread's CPU. RocksDB reaches it
// through one exported function, rocksdb::crc32c::Extend, and its own calls
// to it go through the library's PLT (37 call sites in librocksdb 7.8), so
// a definition in the executable is the one they bind to, as a program's
// own malloc is libc's. crc32c.cc defines it: the same function on SSE4.2's
// crc32 instruction, handing on to the library's own on CPUs without it.
// The checksums are the same bits either way; only the time differs.
#pragma once

#include <cstddef>
#include <cstdint>

namespace rocksdb::crc32c {
// The CRC32C of `data` continued from `init_crc` (0 for a new one), as
// librocksdb declares it in its util/crc32c.h (not installed).
uint32_t Extend(uint32_t init_crc, const char* data, size_t n);
}  // namespace rocksdb::crc32c

namespace ledger {

// Whether rocksdb::crc32c::Extend runs on the crc32 instruction here (false:
// the CPU lacks SSE4.2, and the library's own loop does the work).
bool Crc32cInHardware();

// The library's own rocksdb::crc32c::Extend, which the one here stands in
// for (tests compare the two).
uint32_t LibraryCrc32cExtend(uint32_t init_crc, const char* data, size_t n);

}  // namespace ledger
