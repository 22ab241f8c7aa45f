#include "runtime/thread_pool.h"

#include <algorithm>
#include <chrono>
#include <exception>
#include <utility>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace ei {

namespace {

// A method call runs hundreds of short loops back to back, microseconds apart. Workers spin
// this long before sleeping, because a condition-variable sleep and wake costs tens of
// microseconds of scheduler work each time (a profile of ViT-B/32 on 2 threads showed 7 % of
// the time in the scheduler).
constexpr auto kSpinTime = std::chrono::microseconds(200);
// Chunks per thread: small enough that when another process takes a core, the threads still
// running pick up its share instead of waiting for it.
constexpr size_t kChunksPerThread = 8;

// Set while a thread runs chunks of a loop: a loop nested inside runs on that thread alone
// (std::mutex::try_lock by the thread that holds it would be undefined behaviour).
thread_local bool running_chunks = false;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

}  // namespace

ThreadPool::ThreadPool(int threads) {
  int count = threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 1; i < count; ++i) workers_.emplace_back([this] { work(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_.store(true);
  }
  start_.notify_all();
  for (auto& worker : workers_) worker.join();
}

void ThreadPool::run_chunks() {
  size_t count = count_.load(std::memory_order_relaxed);
  size_t chunk = chunk_size_.load(std::memory_order_relaxed);
  const auto* body = body_.load(std::memory_order_relaxed);
  running_chunks = true;
  for (size_t begin = next_.fetch_add(chunk); begin < count; begin = next_.fetch_add(chunk)) {
    // An exception leaving a worker thread would end the process (memory running out inside a
    // loop, for example), so the first one is kept for parallel_for() to rethrow on its caller.
    try {
      (*body)(begin, std::min(count, begin + chunk));
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!failure_) failure_ = std::current_exception();
    }
  }
  running_chunks = false;
}

void ThreadPool::work() {
  uint64_t seen = 0;
  while (true) {
    uint64_t current = generation_.load(std::memory_order_acquire);
    auto deadline = std::chrono::steady_clock::now() + kSpinTime;
    for (int spin = 0; current == seen && !stopping_.load(std::memory_order_relaxed); ++spin) {
      cpu_relax();
      current = generation_.load(std::memory_order_acquire);
      if ((spin & 63) == 63 && std::chrono::steady_clock::now() > deadline) break;
    }
    if (current == seen) {
      std::unique_lock<std::mutex> lock(mutex_);
      start_.wait(lock, [&] { return stopping_.load() || generation_.load() != seen; });
      current = generation_.load(std::memory_order_acquire);
    }
    if (stopping_.load()) return;
    seen = current;

    // Join the loop only while its caller still has it open: the caller closes it once every
    // chunk is taken and then waits for the threads that joined, never for one that did not.
    active_.fetch_add(1);
    if (open_generation_.load() == current) run_chunks();
    active_.fetch_sub(1);
  }
}

void ThreadPool::parallel_for(size_t count, size_t grain, const std::function<void(size_t, size_t)>& body) {
  size_t threads = static_cast<size_t>(size());
  size_t pieces = std::min(threads * kChunksPerThread, grain == 0 ? count : count / grain);
  if (pieces <= 1 || running_chunks || callers_.load(std::memory_order_relaxed) > 1) {
    if (count > 0) body(0, count);
    return;
  }
  // A pool serves one loop at a time. While another call's loop uses it, this call runs on
  // its own thread instead of waiting, so concurrent method calls each keep a core busy.
  std::unique_lock<std::mutex> call_lock(call_mutex_, std::try_to_lock);
  if (!call_lock.owns_lock()) {
    body(0, count);
    return;
  }

  body_.store(&body, std::memory_order_relaxed);
  count_.store(count, std::memory_order_relaxed);
  chunk_size_.store((count + pieces - 1) / pieces, std::memory_order_relaxed);
  next_.store(0, std::memory_order_relaxed);
  uint64_t generation = generation_.load(std::memory_order_relaxed) + 1;
  open_generation_.store(generation);
  {
    // Under the mutex, so a worker between its check and its wait cannot miss the change.
    std::lock_guard<std::mutex> lock(mutex_);
    generation_.store(generation, std::memory_order_release);
  }
  start_.notify_all();

  run_chunks();
  open_generation_.store(0);
  while (active_.load() != 0) cpu_relax();
  std::exception_ptr failure;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    failure = std::exchange(failure_, nullptr);
  }
  if (failure) std::rethrow_exception(failure);
}

void parallel_for(ThreadPool* pool, size_t count, size_t grain, const std::function<void(size_t, size_t)>& body) {
  if (pool == nullptr || pool->size() <= 1) {
    if (count > 0) body(0, count);
    return;
  }
  pool->parallel_for(count, grain, body);
}

}  // namespace ei
