#include "runtime/thread_pool.h"

#include <algorithm>

namespace ei {

ThreadPool::ThreadPool(int threads) {
  int count = threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 1; i < count; ++i) workers_.emplace_back([this, i] { work(static_cast<size_t>(i)); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  start_.notify_all();
  for (auto& worker : workers_) worker.join();
}

void ThreadPool::work(size_t index) {
  uint64_t seen = 0;
  while (true) {
    std::unique_lock<std::mutex> lock(mutex_);
    start_.wait(lock, [&] { return stopping_ || generation_ != seen; });
    if (stopping_) return;
    seen = generation_;
    if (index >= chunks_) continue;
    const auto* body = body_;
    size_t begin = count_ * index / chunks_;
    size_t end = count_ * (index + 1) / chunks_;
    lock.unlock();
    (*body)(begin, end);
    lock.lock();
    if (--pending_ == 0) done_.notify_one();
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
  {
    std::lock_guard<std::mutex> lock(mutex_);
    body_ = &body;
    count_ = count;
    chunks_ = chunks;
    pending_ = chunks - 1;
    ++generation_;
  }
  start_.notify_all();
  body(0, count / chunks);
  std::unique_lock<std::mutex> lock(mutex_);
  done_.wait(lock, [&] { return pending_ == 0; });
  body_ = nullptr;
}

void parallel_for(ThreadPool* pool, size_t count, size_t grain, const std::function<void(size_t, size_t)>& body) {
  if (pool == nullptr || pool->size() <= 1) {
    if (count > 0) body(0, count);
    return;
  }
  pool->parallel_for(count, grain, body);
}

}  // namespace ei
