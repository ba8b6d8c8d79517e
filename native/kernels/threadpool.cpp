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

  void run(int64_t n, int64_t grain, TaskFn fn, void* ctx) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    int64_t chunks = (n + grain - 1) / grain;
    if (chunks > threads_) chunks = threads_;
    std::unique_lock<std::mutex> busy(submit_, std::try_to_lock);
    if (chunks <= 1 || !busy.owns_lock()) {
      fn(ctx, 0, n, 0);
      return;
    }
    fn_ = fn;
    ctx_ = ctx;
    n_ = n;
    chunks_ = (int)chunks;
    // every worker acknowledges every job, even one with no chunk for it: the next job can then
    // not be published while a worker is still reading this one's parameters
    pending_.store(threads_ - 1, std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lock(sleep_mutex_);
      job_.fetch_add(1, std::memory_order_release);
    }
    sleep_cv_.notify_all();
    fn(ctx, 0, n / chunks, 0);
    // spin while the workers are likely running; then yield, so that on an oversubscribed machine
    // (more runnable threads than cores) a descheduled worker gets the core instead of our spin
    for (int spin = 0; pending_.load(std::memory_order_acquire) != 0; spin++) {
      if (spin < 4096)
        cpu_relax();
      else
        std::this_thread::yield();
    }
  }

 private:
  void start(int threads) {
    threads_ = threads < 1 ? 1 : threads;
    quit_ = false;
    // A worker compares against the job count of its creation, not of its first instruction: a
    // pool resized right after construction may bump the count before a new thread has run at all.
    const uint64_t now = job_.load(std::memory_order_acquire);
    for (int t = 1; t < threads_; t++) workers_.emplace_back([this, t, now] { work(t, now); });
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lock(sleep_mutex_);
      quit_ = true;
      job_.fetch_add(1, std::memory_order_release);
    }
    sleep_cv_.notify_all();
    for (auto& w : workers_) w.join();
    workers_.clear();
  }

  void work(int tid, uint64_t seen) {
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
      if (quit_) return;
      if (tid < chunks_) fn_(ctx_, n_ * tid / chunks_, n_ * (tid + 1) / chunks_, tid);
      pending_.fetch_sub(1, std::memory_order_acq_rel);
    }
  }

  int threads_ = 1;
  std::vector<std::thread> workers_;
  std::mutex submit_;
  std::mutex sleep_mutex_;
  std::condition_variable sleep_cv_;
  std::atomic<uint64_t> job_{0};
  std::atomic<int> pending_{0};
  bool quit_ = false;
  // the job, published by the release increment of job_
  TaskFn fn_ = nullptr;
  void* ctx_ = nullptr;
  int64_t n_ = 0;
  int chunks_ = 0;
};

Pool& pool() {
  static Pool instance(available_cores());  // STABLEGRAD_THREADS is applied by lib/ at load
  return instance;
}

}  // namespace

void parallel_for(int64_t n, int64_t grain, TaskFn fn, void* ctx) { pool().run(n, grain, fn, ctx); }
int num_threads() { return pool().size(); }
int set_num_threads(int n) {
  if (n < 1) n = 1;
  if (n > kMaxThreads) n = kMaxThreads;
  if (n != pool().size()) pool().resize(n);
  return pool().size();
}

}  // namespace sg
