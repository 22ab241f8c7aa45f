// The operator registry: portable implementations of ATen `.out` operators.
//
// A KernelCall's arguments are the operator schema's arguments in order (out arguments
// included), followed by its return values, which alias the out arguments. For
// `aten::add.out(Tensor self, Tensor other, *, Scalar alpha=1, Tensor(a!) out) -> Tensor(a!)`
// the kernel receives [self, other, alpha, out, return].
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "runtime/evalue.h"
#include "runtime/status.h"

namespace ei {

class ThreadPool;

// What a kernel may use besides its arguments.
struct KernelContext {
  ThreadPool* pool = nullptr;  // may be null: run on the calling thread
};

using KernelFn = Status (*)(KernelContext& context, std::span<EValue* const> args);

struct KernelInfo {
  std::string_view name;      // "aten::add"
  std::string_view overload;  // "out"
  KernelFn fn;
};

// Returns the kernel for an operator, or nullptr when the runtime has none.
const KernelInfo* find_kernel(std::string_view name, std::string_view overload);
// Every registered kernel, for `inspect` and tests.
std::span<const KernelInfo> all_kernels();
// "aten::add.out", or "aten::add" when the overload is empty.
std::string operator_full_name(std::string_view name, std::string_view overload);

}  // namespace ei
