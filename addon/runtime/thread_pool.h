// A small fixed pool of worker threads for splitting loops across cores.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace ei {

class ThreadPool {
 public:
  // `threads` counts the calling thread too; 0 means std::thread::hardware_concurrency().
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Runs body(begin, end) over [0, count) in up to size() chunks of at least `grain` items,
  // and returns when all chunks are done. The calling thread runs one chunk. While the pool
  // runs another thread's loop, the call runs body(0, count) on the calling thread alone.
  void parallel_for(size_t count, size_t grain, const std::function<void(size_t, size_t)>& body);

 private:
  void work(size_t index);

  std::vector<std::thread> workers_;
  std::mutex call_mutex_;
  std::mutex mutex_;
  std::condition_variable start_;
  std::condition_variable done_;
  const std::function<void(size_t, size_t)>* body_ = nullptr;
  size_t count_ = 0;
  size_t chunks_ = 0;
  size_t pending_ = 0;
  uint64_t generation_ = 0;
  bool stopping_ = false;
};

// Runs body over [0, count) on `pool` when it is worth it, else on the calling thread.
void parallel_for(ThreadPool* pool, size_t count, size_t grain, const std::function<void(size_t, size_t)>& body);

}  // namespace ei
