// A persistent pool of worker threads shared by every kernel (compiled once, for the baseline ISA).
// Kernels hand it a plain function pointer, so no lambda type ever crosses an ISA boundary.
#pragma once

#include <cstdint>

namespace sg {

// Runs fn(ctx, begin, end, tid) over [0, n) split into at most num_threads() contiguous chunks of
// at least `grain` items, and returns when all chunks are done. Chunk t is called with tid = t
// (for per-chunk scratch). The caller runs chunk 0 (so that a kernel's first part of an array
// stays on the caller's core from call to call); the others go to whichever thread claims them
// first, the caller included, so a late worker never holds up the call. Falls back to one chunk on
// the caller when the pool is busy (a second JavaScript thread calling in), so it never blocks on
// another caller.
typedef void (*TaskFn)(void* ctx, int64_t begin, int64_t end, int tid);
void parallel_for(int64_t n, int64_t grain, TaskFn fn, void* ctx);

// Like parallel_for, but in as many chunks as items (up to 4095 equal ranges), the first run by the
// caller and the others claimed by whichever thread is free, and tid is that thread's slot (0 for
// the caller, 1 .. num_threads()-1 for the workers), for per-thread scratch. For work whose results
// do not depend on which thread does an item: a thread slowed down by another process or by the
// hypervisor then does fewer items instead of holding up the call.
void parallel_for_items(int64_t n, TaskFn fn, void* ctx);

int num_threads();
// Resizes the pool (n >= 1); returns the thread count now in effect.
int set_num_threads(int n);
constexpr int kMaxThreads = 256;

}  // namespace sg
