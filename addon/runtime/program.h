// A loaded ExecuTorch program: the verified flatbuffer, its segments and constants, and one
// prepared MethodPlan per execution plan.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/backend.h"
#include "runtime/data_source.h"
#include "runtime/evalue.h"
#include "runtime/kernel.h"
#include "runtime/status.h"
#include "runtime/tensor.h"
#include "runtime/thread_pool.h"

namespace ei_pte {
struct Program;
struct ExecutionPlan;
struct Tensor;
}  // namespace ei_pte

namespace ei {

struct LoadOptions {
  // Load even when a method needs operators, backends or dtypes that the runtime lacks; such
  // methods report their problems and fail when executed.
  bool allow_unsupported = false;
  int threads = 0;                                   // 0: all cores
  uint64_t max_instructions = 10'000'000;            // per execute() call
  // Per method instance, all arenas together; also each delegate call's workspace.
  uint64_t max_planned_bytes = uint64_t{16} << 30;
};

// The parsed eh00 header that may follow the file identifier.
struct ExtendedHeader {
  bool present = false;
  uint32_t length = 0;
  uint64_t program_size = 0;
  uint64_t segment_base_offset = 0;
  uint64_t segment_data_size = 0;  // 0 in the older 24-byte form
};

struct Problem {
  ErrorCode code;
  std::string message;
};

struct ValueMeta {
  Tag tag = Tag::kNone;
  ScalarType dtype = ScalarType::kFloat;
  std::vector<int64_t> sizes;
  std::vector<uint8_t> dim_order;
  ShapeDynamism dynamism = ShapeDynamism::kStatic;
};

// A method input or output crossing the API: a tensor with contiguous row-major bytes, or a
// scalar, string or None.
struct IoValue {
  Tag tag = Tag::kNone;
  int64_t int_value = 0;
  double double_value = 0;
  bool bool_value = false;
  std::string string_value;
  ScalarType dtype = ScalarType::kFloat;
  std::vector<int64_t> sizes;
  std::shared_ptr<std::byte[]> bytes;  // tensor data, row-major over `sizes`
  size_t nbytes = 0;
};

class Program;

// How to build one value of a method instance; fixed at load.
struct ValueTemplate {
  EValue value;                        // tag, scalars and string; pointers are set per instance
  int32_t tensor_index = -1;           // into MethodPlan::tensors for Tensor values
  std::vector<int32_t> item_indices;   // list items as value indices; -1 is None
};

struct TensorTemplate {
  Tensor tensor;                       // data points at constant bytes, or is null
  int32_t memory_id = -1;              // arena of planned memory, or -1
  uint64_t offset = 0;                 // byte offset in the arena
  const uint8_t* initial = nullptr;    // initial value of planned mutable data
};

// The memory and values of one concurrent use of a method.
struct MethodInstance {
  std::vector<std::shared_ptr<std::byte[]>> arenas;
  std::vector<Tensor> tensors;
  std::vector<EValue> values;
};

// Everything about one execution plan that is fixed after load: checked indices, resolved
// kernels, initialized delegates and the metadata that `inspect` shows.
class MethodPlan {
 public:
  std::string name;
  const ei_pte::ExecutionPlan* plan = nullptr;
  std::vector<ValueMeta> inputs;
  std::vector<ValueMeta> outputs;
  std::vector<std::string> operator_names;     // full names, index = operator index
  std::vector<const KernelInfo*> kernels;      // nullptr when missing
  std::vector<std::string> backend_ids;        // one per delegate
  std::vector<std::shared_ptr<const DelegateHandle>> delegates;  // nullptr when missing
  std::vector<int64_t> arena_sizes;            // memory ids 1..N; entry 0 unused
  std::vector<ValueTemplate> values;
  std::vector<TensorTemplate> tensors;
  size_t instruction_count = 0;
  size_t value_count = 0;
  bool has_jumps = false;  // a JumpFalseCall anywhere: calls of the method may take different paths
  std::vector<Problem> problems;

  bool runnable() const { return problems.empty(); }

 private:
  friend class Program;
  std::mutex pool_mutex_;
  std::vector<std::unique_ptr<MethodInstance>> pool_;
};

class Program {
 public:
  ~Program();

  static Result<std::shared_ptr<Program>> load_file(const std::string& path, const LoadOptions& options);
  static Result<std::shared_ptr<Program>> load_bytes(const uint8_t* bytes, size_t size, const LoadOptions& options);

  std::vector<std::string> method_names() const;
  // Returns the plan named `name`, or kMethodNotFound listing the available names.
  Result<MethodPlan*> method(std::string_view name) const;

  // Runs a method on a worker thread's stack. Thread-safe: concurrent calls each use their own
  // method instance (planned memory and values) from a pool.
  Result<std::vector<IoValue>> execute(std::string_view method_name, const std::vector<IoValue>& inputs);

  // Runs several calls of one method together and returns each call's outputs or error.
  // Calls step through the instructions side by side, so a delegate can share work between
  // them (the XNNPACK backend reads each weight matrix once for all of them), and kernels run
  // one call per thread. Outputs are bit for bit those of separate execute() calls. A method
  // with jumps runs its calls one after another instead, since their paths may part.
  std::vector<Result<std::vector<IoValue>>> execute_batch(std::string_view method_name,
                                                          const std::vector<std::vector<IoValue>>& inputs);

  const ExtendedHeader& extended_header() const { return header_; }
  const ei_pte::Program* flatbuffer() const { return program_; }
  const DataSource& source() const { return *source_; }
  uint64_t program_size() const { return program_size_; }
  uint64_t segment_base() const { return segment_base_; }
  const LoadOptions& options() const { return options_; }
  // Bytes of segment `index`, bounds-checked at load.
  std::span<const uint8_t> segment(size_t index) const;
  std::vector<std::string> named_data_keys() const;

 private:
  Program() = default;
  static Result<std::shared_ptr<Program>> load(std::unique_ptr<DataSource> source, const LoadOptions& options);

  Status parse_header();
  Status verify_flatbuffer();
  Status check_program_tables();
  Status prepare_method(MethodPlan& plan, const ei_pte::ExecutionPlan* flat_plan);
  Status check_values(MethodPlan& plan);
  Status check_instructions(MethodPlan& plan);
  Status prepare_delegates(MethodPlan& plan);
  // Locates the bytes of a constant or initial-value tensor, checked against its size.
  Result<const uint8_t*> tensor_data(const ei_pte::Tensor* tensor, size_t nbytes, bool mutable_initial) const;

  Result<std::unique_ptr<MethodInstance>> create_instance(MethodPlan& plan);
  // One call of a method within run().
  struct Call {
    MethodInstance* instance = nullptr;
    const std::vector<IoValue>* inputs = nullptr;
    std::vector<IoValue> outputs;
    Status status;
    std::vector<EValue*> args;  // the current instruction's arguments
  };
  // Runs the calls side by side, one instruction at a time; a call that fails stops and the
  // others go on. Calls must not take different paths: several calls need a method without
  // jumps (MethodPlan::has_jumps). Kernels and delegates split their work over `pool`, or run
  // on the calling thread when it is null.
  void run(MethodPlan& plan, std::span<Call> calls, ThreadPool* pool);

  std::unique_ptr<DataSource> source_;
  LoadOptions options_;
  ExtendedHeader header_;
  uint64_t program_size_ = 0;
  uint64_t segment_base_ = 0;
  std::vector<std::span<const uint8_t>> segments_;
  const ei_pte::Program* program_ = nullptr;
  std::unique_ptr<NamedDataMap> named_data_;
  std::unique_ptr<ThreadPool> pool_;  // shared by every call's kernels and delegates
  std::vector<std::unique_ptr<MethodPlan>> methods_;
};

}  // namespace ei
