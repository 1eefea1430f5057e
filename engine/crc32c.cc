#include "engine/crc32c.h"

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace ledger {

namespace {

using ExtendFn = uint32_t (*)(uint32_t, const char*, size_t);

#if defined(__x86_64__)
// Eight bytes a step from the first aligned one; a step's latency is three
// cycles, ~0.4 cycles a byte.
__attribute__((target("sse4.2"))) uint32_t ExtendSse42(uint32_t init_crc, const char* data,
                                                       size_t n) {
  uint64_t crc = init_crc ^ 0xffffffffu;
  const auto* p = reinterpret_cast<const unsigned char*>(data);
  for (; n > 0 && (reinterpret_cast<uintptr_t>(p) & 7) != 0; --n) {
    crc = _mm_crc32_u8(static_cast<uint32_t>(crc), *p++);
  }
  for (; n >= 8; n -= 8, p += 8) {
    uint64_t word;
    std::memcpy(&word, p, 8);
    crc = _mm_crc32_u64(crc, word);
  }
  for (; n > 0; --n) crc = _mm_crc32_u8(static_cast<uint32_t>(crc), *p++);
  return static_cast<uint32_t>(crc) ^ 0xffffffffu;
}
#endif

ExtendFn Library() {
  // The next definition after this executable's: librocksdb's.
  static const ExtendFn library = [] {
    void* f = ::dlsym(RTLD_NEXT, "_ZN7rocksdb6crc32c6ExtendEjPKcm");
    if (f == nullptr) {
      std::fprintf(stderr, "ledger: librocksdb has no rocksdb::crc32c::Extend\n");
      std::abort();
    }
    return reinterpret_cast<ExtendFn>(f);
  }();
  return library;
}

ExtendFn Chosen() {
  // Chosen on first use: RocksDB may checksum before main (its static
  // initialisers run before this executable's, and so before the one that
  // reads the CPU's features for __builtin_cpu_supports: read them here).
  static const ExtendFn chosen = [] {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("sse4.2")) return &ExtendSse42;
#endif
    return Library();
  }();
  return chosen;
}

}  // namespace

bool Crc32cInHardware() {
#if defined(__x86_64__)
  return Chosen() == &ExtendSse42;
#else
  return false;
#endif
}

uint32_t LibraryCrc32cExtend(uint32_t init_crc, const char* data, size_t n) {
  return Library()(init_crc, data, n);
}

}  // namespace ledger

namespace rocksdb::crc32c {

__attribute__((visibility("default"))) uint32_t Extend(uint32_t init_crc, const char* data,
                                                       size_t n) {
  return ledger::Chosen()(init_crc, data, n);
}

}  // namespace rocksdb::crc32c
