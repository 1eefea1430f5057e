// glibc's malloc, told to keep what the process frees for its next
// allocations instead of giving it back to the kernel.
//
// By default glibc serves a large allocation (past a threshold that starts at
// 128 KiB) with its own mmap, unmapped again when freed, and gives back free
// memory at the top of a heap (past 128 KiB). A batch of 1,000 commands
// allocates several such blocks (the request body, the commands, the answers,
// RocksDB's 8 MiB memtable arena blocks), so new pages were faulted in for
// nearly every batch. On the virtual machines these tools are measured on a
// page fault costs ~16 us of CPU (64 MiB touched anew: 16,384 faults, 0.26 s),
// and ledgerd took 34,000-43,000 faults in 5 s of Cap'n Proto batches. With
// large blocks taken from the heaps and free memory kept: 6,900-10,500
// faults, system time 0.78-0.97 us per event against 0.85-1.08 (four
// alternating runs; medians 0.90 and 0.98), peak resident memory 209 MB
// against 193 under the same load. Memory freed stays with the process
// for its next allocations.
#pragma once

#include <malloc.h>

namespace ledger {

inline void KeepFreedMemory() {
  mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's largest: a heap holds 64 MiB
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

}  // namespace ledger
