// A small fixed pool of worker threads for splitting loops across cores.
#pragma once

#include <atomic>
#include <condition_variable>
#include <exception>
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

  // Runs body(begin, end) over [0, count) in chunks of at least `grain` items, taken by the
  // calling thread and the workers as each finishes its last one, and returns when all are
  // done. The first exception a chunk throws is rethrown here once every chunk has run. While the pool runs another thread's loop, the call runs body(0, count) on the
  // calling thread alone.
  void parallel_for(size_t count, size_t grain, const std::function<void(size_t, size_t)>& body);

  // Marks one method call in flight for its lifetime. While two or more are, loops run on each
  // call's own thread: the calls already keep the cores busy, and splitting their loops too
  // would only add waiting.
  class CallScope {
   public:
    explicit CallScope(ThreadPool* pool) : pool_(pool) {
      if (pool_) pool_->callers_.fetch_add(1, std::memory_order_relaxed);
    }
    ~CallScope() {
      if (pool_) pool_->callers_.fetch_sub(1, std::memory_order_relaxed);
    }
    CallScope(const CallScope&) = delete;
    CallScope& operator=(const CallScope&) = delete;

   private:
    ThreadPool* pool_;
  };

 private:
  void work();
  // Takes chunks of the current loop until none is left.
  void run_chunks();

  std::atomic<int> callers_{0};
  std::vector<std::thread> workers_;
  std::mutex call_mutex_;  // held by the caller whose loop the workers run
  std::mutex mutex_;       // guards sleeping on start_
  std::condition_variable start_;
  std::atomic<const std::function<void(size_t, size_t)>*> body_{nullptr};
  std::atomic<size_t> count_{0};
  std::atomic<size_t> chunk_size_{1};
  std::atomic<size_t> next_{0};              // start of the next chunk to take
  std::atomic<uint64_t> generation_{0};      // counts loops; workers wake when it changes
  std::atomic<uint64_t> open_generation_{0}; // the loop workers may still join, or 0
  std::atomic<int> active_{0};               // workers inside the current loop
  std::atomic<bool> stopping_{false};
  std::exception_ptr failure_;               // the current loop's first exception, guarded by mutex_
};

// Runs body over [0, count) on `pool` when it is worth it, else on the calling thread.
void parallel_for(ThreadPool* pool, size_t count, size_t grain, const std::function<void(size_t, size_t)>& body);

}  // namespace ei
