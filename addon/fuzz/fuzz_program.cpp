// libFuzzer entry point: loads arbitrary bytes as a .pte program and, when the load succeeds,
// executes every runnable method with inputs synthesized from its metadata. Any sanitizer
// report, crash, hang or allocation past -rss_limit_mb is a bug in the runtime. For almost
// every input the expected outcome is a load that fails with an error Status.
//
// Build and run it with `npm run fuzz` (scripts/fuzz.mjs).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "runtime/program.h"

namespace {

// Synthesized inputs larger than this are skipped, because multi-megabyte tensors of zeros
// slow the fuzzer down without reaching new code.
constexpr size_t kMaxInputBytes = size_t{1} << 20;

enum class Fill { kZeros, kOnes };

// Writes one element of value 0 or 1 in `dtype` at `out`.
void write_element(ei::ScalarType dtype, Fill fill, uint8_t* out) {
  bool one = fill == Fill::kOnes;
  switch (dtype) {
    case ei::ScalarType::kFloat: {
      float value = one ? 1.0f : 0.0f;
      std::memcpy(out, &value, sizeof(value));
      return;
    }
    case ei::ScalarType::kDouble: {
      double value = one ? 1.0 : 0.0;
      std::memcpy(out, &value, sizeof(value));
      return;
    }
    default: {
      // For integral and bool types, 1 is a little-endian 1 in the element's width.
      size_t size = ei::element_size(dtype);
      std::memset(out, 0, size);
      if (one && size > 0) out[0] = 1;
      return;
    }
  }
}

// Builds one input from its metadata with `sizes` in place of the declared shape. Returns
// false when the input cannot be synthesized (too large, or a type the API cannot pass).
bool make_input(const ei::ValueMeta& meta, const std::vector<int64_t>& sizes, Fill fill, ei::IoValue& input) {
  input = ei::IoValue();
  input.tag = meta.tag;
  switch (meta.tag) {
    case ei::Tag::kTensor: {
      size_t element = ei::element_size(meta.dtype);
      int64_t numel = ei::checked_numel(sizes);
      if (element == 0 || numel < 0 || static_cast<uint64_t>(numel) > kMaxInputBytes / element) return false;
      input.dtype = meta.dtype;
      input.sizes = sizes;
      input.nbytes = static_cast<size_t>(numel) * element;
      input.bytes = ei::allocate_aligned(input.nbytes == 0 ? 1 : input.nbytes);
      if (!input.bytes) return false;
      auto* bytes = reinterpret_cast<uint8_t*>(input.bytes.get());
      for (int64_t i = 0; i < numel; ++i) write_element(meta.dtype, fill, bytes + static_cast<size_t>(i) * element);
      return true;
    }
    case ei::Tag::kInt:
      input.int_value = fill == Fill::kOnes ? 1 : 0;
      return true;
    case ei::Tag::kDouble:
      input.double_value = fill == Fill::kOnes ? 1.0 : 0.0;
      return true;
    case ei::Tag::kBool:
      input.bool_value = fill == Fill::kOnes;
      return true;
    case ei::Tag::kNone:
      return true;
    default:
      // Lists cannot cross the API, so pass None, which execute() rejects with kInvalidInput.
      input.tag = ei::Tag::kNone;
      return true;
  }
}

// Returns a shape below a dynamic tensor's upper bound, with every dimension halved.
std::vector<int64_t> smaller_shape(const ei::ValueMeta& meta) {
  std::vector<int64_t> sizes = meta.sizes;
  for (int64_t& size : sizes) size /= 2;
  return sizes;
}

void execute_with(ei::Program& program, const ei::MethodPlan& plan, Fill fill, bool shrink_dynamic) {
  std::vector<ei::IoValue> inputs(plan.inputs.size());
  for (size_t i = 0; i < plan.inputs.size(); ++i) {
    const ei::ValueMeta& meta = plan.inputs[i];
    bool dynamic = meta.tag == ei::Tag::kTensor && meta.dynamism != ei::ShapeDynamism::kStatic;
    const std::vector<int64_t> sizes = shrink_dynamic && dynamic ? smaller_shape(meta) : meta.sizes;
    if (!make_input(meta, sizes, fill, inputs[i])) return;
  }
  // Failed calls are expected and ignored, because only sanitizer reports and crashes matter here.
  auto outputs = program.execute(plan.name, inputs);
  (void)outputs;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ei::LoadOptions options;
  options.allow_unsupported = true;
  options.threads = 1;
  options.max_instructions = 100'000;
  options.max_planned_bytes = uint64_t{64} << 20;

  auto loaded = ei::Program::load_bytes(data, size, options);
  if (!loaded.ok()) return 0;
  std::shared_ptr<ei::Program> program = loaded.value();

  for (const std::string& name : program->method_names()) {
    auto found = program->method(name);
    if (!found.ok()) continue;
    const ei::MethodPlan& plan = *found.value();
    if (!plan.runnable()) {
      // A method with problems must reject with its first problem and never run.
      auto rejected = program->execute(name, {});
      (void)rejected;
      continue;
    }
    bool has_dynamic = std::any_of(plan.inputs.begin(), plan.inputs.end(), [](const ei::ValueMeta& meta) {
      return meta.tag == ei::Tag::kTensor && meta.dynamism != ei::ShapeDynamism::kStatic;
    });
    // The second call reuses the pooled method instance of the first one.
    execute_with(*program, plan, Fill::kZeros, false);
    execute_with(*program, plan, Fill::kOnes, false);
    if (has_dynamic) execute_with(*program, plan, Fill::kOnes, true);
  }
  return 0;
}
