#include "threadpool.h"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <sched.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
static inline void cpu_relax() { _mm_pause(); }
#elif defined(__aarch64__)
static inline void cpu_relax() { __asm__ volatile("yield"); }
#else
static inline void cpu_relax() {}
#endif

namespace sg {
namespace {

int available_cores() {
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
#endif
  unsigned n = std::thread::hardware_concurrency();
  return n > 0 ? (int)n : 1;
}

// Workers spin briefly on the job counter (a training step issues kernels microseconds apart, and
// waking a sleeping thread costs tens of microseconds), then sleep on a condition variable.
//
// A job's chunks are claimed, not assigned: the caller runs chunk 0, then it and the workers take
// the next unclaimed chunk until none is left, so a worker that is late (descheduled by the OS or
// the hypervisor, or busy waking up) costs the job nothing: the caller runs its chunk too. Before,
// each thread waited for its own chunk's thread, and in a training step on a shared 2-vCPU machine
// about 1% of the jobs waited ~0.5 ms for a descheduled worker, doubling the mean time of the
// small products. A chunk's range and its tid (its index, for per-chunk scratch) do not depend on
// who runs it, so results do not either. Jobs of items (parallel_for_items) have up to 4095 chunks
// and pass the running thread's slot as tid instead: there, per-thread scratch is all that tid
// selects.
class Pool {
 public:
  explicit Pool(int threads) { start(threads); }
  ~Pool() { stop(); }

  int size() const { return threads_; }

  void resize(int threads) {
    std::lock_guard<std::mutex> busy(submit_);
    stop();
    start(threads);
  }

  // chunks: at most threads_ (tid = the chunk's index), or, by_slot, at most kField (tid = the
  // running thread's slot)
  void run(int64_t n, int64_t grain, TaskFn fn, void* ctx, bool by_slot) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    int64_t chunks = (n + grain - 1) / grain;
    const int64_t most = by_slot ? (int64_t)kField : (int64_t)threads_;
    if (chunks > most) chunks = most;
    std::unique_lock<std::mutex> busy(submit_, std::try_to_lock);
    if (chunks <= 1 || !busy.owns_lock()) {
      fn(ctx, 0, n, 0);
      return;
    }
    // the previous job is finished (every chunk claimed and done), so no worker reads these now;
    // a worker reads them only after claiming a chunk of this job, which the release below publishes
    fn_ = fn;
    ctx_ = ctx;
    n_ = n;
    by_slot_ = by_slot;
    done_.store(0, std::memory_order_relaxed);
    // chunk 0 is the caller's, not claimed (the counter starts at 1): it runs it below
    claim_.store(++serial_ << kSerialShift | (uint64_t)chunks << kChunksShift | 1u, std::memory_order_release);
    {
      std::lock_guard<std::mutex> lock(sleep_mutex_);
      job_.fetch_add(1, std::memory_order_release);
    }
    sleep_cv_.notify_all();
    // The caller runs chunk 0 itself, then claims with the workers. When the first free thread took
    // chunk 0, a worker spinning on the job count won it from the caller 7 times in 10 with jobs 0-20
    // us apart (a C++ loop of two-chunk jobs), so the half of an array that a kernel gave to a core
    // changed from kernel to kernel at random, and with it which core's L2 held it: the seed model's
    // forward product, weight gradient, sums of squares and SGD step each split the weight in halves
    // meant to stay on one core.
    fn_(ctx_, 0, n / chunks, 0);
    done_.fetch_add(1, std::memory_order_acq_rel);
    run_claimed(0);
    // spin while the workers are likely running their chunks; then yield, so that on an
    // oversubscribed machine (more runnable threads than cores) a descheduled worker gets the core
    for (int spin = 0; done_.load(std::memory_order_acquire) != chunks; spin++) {
      if (spin < 4096)
        cpu_relax();
      else
        std::this_thread::yield();
    }
  }

 private:
  // claim_ = serial (the job's number, 40 bits) | chunks (12 bits) | next unclaimed chunk (12 bits)
  static constexpr int kSerialShift = 24, kChunksShift = 12;
  static constexpr uint64_t kField = (1u << 12) - 1;
  static_assert(kMaxThreads <= (int)kField, "chunk fields hold the thread count");

  // Claims and runs chunks of the current job until none is left. The compare-exchange includes the
  // job's serial, so a thread still holding an older job's value claims nothing.
  void run_claimed(int slot) {
    uint64_t c = claim_.load(std::memory_order_acquire);
    for (;;) {
      const uint64_t chunks = c >> kChunksShift & kField, next = c & kField;
      if (next >= chunks) return;
      if (!claim_.compare_exchange_weak(c, c + 1, std::memory_order_acq_rel, std::memory_order_acquire)) continue;
      // the job cannot finish (nor its fields change) before this chunk is done
      const int64_t n = n_;
      fn_(ctx_, n * (int64_t)next / (int64_t)chunks, n * (int64_t)(next + 1) / (int64_t)chunks, by_slot_ ? slot : (int)next);
      done_.fetch_add(1, std::memory_order_acq_rel);
      c = claim_.load(std::memory_order_acquire);
    }
  }

  void start(int threads) {
    threads_ = threads < 1 ? 1 : threads;
    quit_.store(false, std::memory_order_relaxed);
    // A worker compares against the job count of its creation, not of its first instruction: a
    // pool resized right after construction may bump the count before a new thread has run at all.
    const uint64_t now = job_.load(std::memory_order_acquire);
    for (int t = 1; t < threads_; t++) workers_.emplace_back([this, now, t] { work(now, t); });
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lock(sleep_mutex_);
      quit_.store(true, std::memory_order_relaxed);  // published by the release increment below
      job_.fetch_add(1, std::memory_order_release);
    }
    sleep_cv_.notify_all();
    for (auto& w : workers_) w.join();
    workers_.clear();
  }

  void work(uint64_t seen, int slot) {
    for (;;) {
      uint64_t now = seen;
      for (int spin = 0; spin < 20000 && (now = job_.load(std::memory_order_acquire)) == seen; spin++)
        if (spin < 4096)
          cpu_relax();
        else
          std::this_thread::yield();
      if (now == seen) {
        std::unique_lock<std::mutex> lock(sleep_mutex_);
        sleep_cv_.wait(lock, [&] { return job_.load(std::memory_order_acquire) != seen; });
        now = job_.load(std::memory_order_acquire);
      }
      seen = now;
      if (quit_.load(std::memory_order_relaxed)) return;
      run_claimed(slot);
    }
  }

  int threads_ = 1;
  std::vector<std::thread> workers_;
  std::mutex submit_;
  std::mutex sleep_mutex_;
  std::condition_variable sleep_cv_;
  std::atomic<uint64_t> job_{0};
  // atomic: a worker that claims nothing reads it with no later synchronization with stop()
  std::atomic<bool> quit_{false};
  // the job: claim_ publishes it (release) and is claimed from; done_ counts its finished chunks
  std::atomic<uint64_t> claim_{0};
  std::atomic<int64_t> done_{0};
  uint64_t serial_ = 0;  // the caller's (under submit_)
  TaskFn fn_ = nullptr;
  void* ctx_ = nullptr;
  int64_t n_ = 0;
  bool by_slot_ = false;
};

Pool& pool() {
  static Pool instance(available_cores());  // STABLEGRAD_THREADS is applied by lib/ at load
  return instance;
}

}  // namespace

void parallel_for(int64_t n, int64_t grain, TaskFn fn, void* ctx) { pool().run(n, grain, fn, ctx, false); }
void parallel_for_items(int64_t n, TaskFn fn, void* ctx) { pool().run(n, 1, fn, ctx, true); }
int num_threads() { return pool().size(); }
int set_num_threads(int n) {
  if (n < 1) n = 1;
  if (n > kMaxThreads) n = kMaxThreads;
  if (n != pool().size()) pool().resize(n);
  return pool().size();
}

}  // namespace sg
