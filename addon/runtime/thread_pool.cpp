#include "runtime/thread_pool.h"

#include <algorithm>
#include <chrono>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace ei {

namespace {

// A method call runs hundreds of short loops back to back, microseconds apart. Workers and the
// caller spin this long before sleeping, because a condition-variable sleep and wake costs
// tens of microseconds of scheduler work each time (a profile of ViT-B/32 on 2 threads showed
// 7 % of the time in the scheduler).
constexpr auto kSpinTime = std::chrono::microseconds(200);

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
  for (int i = 1; i < count; ++i) workers_.emplace_back([this, i] { work(static_cast<size_t>(i)); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_.store(true);
  }
  start_.notify_all();
  for (auto& worker : workers_) worker.join();
}

void ThreadPool::work(size_t index) {
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

    size_t chunks = chunks_.load(std::memory_order_relaxed);
    size_t count = count_.load(std::memory_order_relaxed);
    const auto* body = body_.load(std::memory_order_relaxed);
    // A worker left out of one loop may read the fields while the next loop is published;
    // the generation tells, and the worker then starts over with the newer loop.
    std::atomic_thread_fence(std::memory_order_acquire);
    if (generation_.load(std::memory_order_relaxed) != current) continue;
    seen = current;
    if (index >= chunks) continue;
    (*body)(count * index / chunks, count * (index + 1) / chunks);
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::parallel_for(size_t count, size_t grain, const std::function<void(size_t, size_t)>& body) {
  size_t chunks = std::min<size_t>(static_cast<size_t>(size()), grain == 0 ? count : count / grain);
  if (chunks <= 1 || callers_.load(std::memory_order_relaxed) > 1) {
    if (count > 0) body(0, count);
    return;
  }
  // A pool serves one loop at a time. When another call's loop holds it, this call runs on
  // its own thread instead of waiting, so concurrent method calls each keep a core busy.
  std::unique_lock<std::mutex> call_lock(call_mutex_, std::try_to_lock);
  if (!call_lock.owns_lock()) {
    body(0, count);
    return;
  }

  // The job is published by the generation's release store; workers read it after an acquire.
  body_.store(&body, std::memory_order_relaxed);
  count_.store(count, std::memory_order_relaxed);
  chunks_.store(chunks, std::memory_order_relaxed);
  pending_.store(chunks - 1, std::memory_order_relaxed);
  {
    // Under the mutex, so a worker between its check and its wait cannot miss the change.
    std::lock_guard<std::mutex> lock(mutex_);
    generation_.fetch_add(1, std::memory_order_release);
  }
  start_.notify_all();

  body(0, count / chunks);
  auto deadline = std::chrono::steady_clock::now() + kSpinTime;
  for (int spin = 0; pending_.load(std::memory_order_acquire) != 0; ++spin) {
    if ((spin & 63) == 63 && std::chrono::steady_clock::now() > deadline) {
      std::this_thread::yield();
    } else {
      cpu_relax();
    }
  }
}

void parallel_for(ThreadPool* pool, size_t count, size_t grain, const std::function<void(size_t, size_t)>& body) {
  if (pool == nullptr || pool->size() <= 1) {
    if (count > 0) body(0, count);
    return;
  }
  pool->parallel_for(count, grain, body);
}

}  // namespace ei
