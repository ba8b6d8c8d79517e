// The thread pool's job hand-off under stress, built with -fsanitize=thread by test/threads.test.ts:
// many jobs of random sizes, pool resizes, and pauses long enough for the workers to fall asleep.
// Every index must be run exactly once; the first chunk by the calling thread; in parallel_for,
// chunk t must be [n*t/chunks, n*(t+1)/chunks) with tid t; in parallel_for_items, tid must be a
// thread slot that no other chunk running at the same time has; and ThreadSanitizer must see no
// data race. Exit status 0 when all
// holds.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "threadpool.h"

namespace {

struct Job {
  std::vector<int>* hits;  // hits (n): how many times each index ran
  int64_t n, chunks;
  std::atomic<int>* errors;
  std::atomic<int>* busy;  // per thread slot: 1 while a chunk runs with that tid (items jobs)
  int threads;
  std::thread::id caller;
};

// the first chunk (begin 0) runs on the thread that called parallel_for(_items)
void check_first(const Job* job, int64_t begin) {
  if (begin == 0 && std::this_thread::get_id() != job->caller) job->errors->fetch_add(1);
}

void run_chunk(void* ctx, int64_t begin, int64_t end, int tid) {
  Job* job = static_cast<Job*>(ctx);
  if (tid < 0 || tid >= job->chunks || begin != job->n * tid / job->chunks || end != job->n * (tid + 1) / job->chunks)
    job->errors->fetch_add(1);
  check_first(job, begin);
  for (int64_t i = begin; i < end; i++) (*job->hits)[i]++;
}

void run_items_chunk(void* ctx, int64_t begin, int64_t end, int tid) {
  Job* job = static_cast<Job*>(ctx);
  if (tid < 0 || tid >= job->threads || job->busy[tid].exchange(1) != 0) {
    job->errors->fetch_add(1);
    return;
  }
  check_first(job, begin);
  for (int64_t i = begin; i < end; i++) (*job->hits)[i]++;
  job->busy[tid].store(0);
}

}  // namespace

int main(int argc, char** argv) {
  const int jobs = argc > 1 ? std::atoi(argv[1]) : 50000;
  std::atomic<int> errors{0};
  std::srand(1);
  for (int threads : {2, 3, 2, 1, 4}) {
    if (sg::set_num_threads(threads) != threads) errors++;
    for (int it = 0; it < jobs; it++) {
      const int64_t n = 1 + std::rand() % 64, grain = 1 + std::rand() % 8;
      std::vector<int> hits(n, 0);
      std::atomic<int> busy[8] = {};
      Job job{&hits, n, std::min<int64_t>((n + grain - 1) / grain, threads), &errors, busy, threads, std::this_thread::get_id()};
      if (it % 2)
        sg::parallel_for_items(n, run_items_chunk, &job);
      else
        sg::parallel_for(n, grain, run_chunk, &job);
      for (int64_t i = 0; i < n; i++)
        if (hits[i] != 1) {
          errors++;
          break;
        }
      // long enough for the workers to stop spinning and sleep
      if (it % (jobs / 4 + 1) == 0) std::this_thread::sleep_for(std::chrono::milliseconds(40));
    }
  }
  std::printf("pool stress: %d jobs per thread count, %d errors\n", jobs, errors.load());
  return errors.load() == 0 ? 0 : 1;
}
