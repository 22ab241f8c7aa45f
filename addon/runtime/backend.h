// The delegate interface: a backend turns a delegate's payload into a handle at method load,
// and the handle runs DelegateCall instructions.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "runtime/evalue.h"
#include "runtime/kernel.h"
#include "runtime/status.h"
#include "runtime/thread_pool.h"

namespace ei {

struct CompileSpec {
  std::string_view key;
  std::span<const uint8_t> value;
};

// Read-only access to the program's named data (key -> bytes of a segment).
class NamedDataMap {
 public:
  virtual ~NamedDataMap() = default;
  // Returns the bytes stored under `key`, or kMalformed/kExternalData when absent.
  virtual Result<std::span<const uint8_t>> get(std::string_view key) const = 0;
};

struct BackendInitContext {
  std::span<const uint8_t> processed;   // the payload, inline or from a segment
  std::span<const CompileSpec> compile_specs;
  const NamedDataMap* named_data = nullptr;
  int threads = 0;                      // 0: all cores
  ThreadPool* pool = nullptr;           // the program's pool, for work done at load
  uint64_t max_workspace_bytes = uint64_t{16} << 30;  // per call: intermediates and scratch
  // Tells the program that the backend copied these file bytes (packed weights, for example)
  // and will not read them again, so a memory-mapped file's pages can leave memory.
  std::function<void(const void* data, size_t size)> release_constant;
  // Row limits, one per DelegateCall argument. A positive limit means the program reads only
  // that many leading rows of the output, the tensor seen as [numel / last dim, last dim].
  // That happens when the only reader is a select of token 0 after a transformer's last
  // layer. The backend may leave the other rows unwritten. Empty or 0: every element is read.
  std::span<const int64_t> arg_row_limits;
};

// A delegate ready to run. One handle is shared by every concurrent call of a method, so
// execute() must be safe to call from several threads at once.
class DelegateHandle {
 public:
  virtual ~DelegateHandle() = default;
  // `args` are the DelegateCall's values: the delegate's inputs, then its outputs.
  virtual Status execute(KernelContext& context, std::span<EValue* const> args) const = 0;

  // Runs the same DelegateCall for several calls of a method at once (calls batched
  // together), writing each call's result to statuses[i]. A backend may share work between
  // the calls, but each call's outputs must be what execute() would give it alone. This
  // default runs the calls one per thread of `pool`.
  virtual void execute_batch(ThreadPool* pool, std::span<const std::span<EValue* const>> args,
                             std::span<Status> statuses) const {
    parallel_for(pool, args.size(), 1, [&](size_t begin, size_t end) {
      KernelContext context;  // no pool: the calls themselves are spread over the threads
      for (size_t i = begin; i < end; ++i) statuses[i] = execute(context, args[i]);
    });
  }
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string_view id() const = 0;
  virtual Result<std::unique_ptr<DelegateHandle>> init(const BackendInitContext& context) const = 0;
};

// Returns the backend registered under `id`, or nullptr.
const Backend* find_backend(std::string_view id);
// Ids of the registered backends, for messages and `inspect`.
std::vector<std::string_view> backend_ids();

}  // namespace ei
