// aten::full.out(SymInt[] size, Scalar fill_value, *, Tensor(a!) out) -> Tensor(a!)
// aten::full_like.out(Tensor self, Scalar fill_value, *, MemoryFormat? memory_format=None, Tensor(a!) out) -> Tensor(a!)
// aten::zeros.out(SymInt[] size, *, Tensor(a!) out) -> Tensor(a!)
// aten::ones.out(SymInt[] size, *, Tensor(a!) out) -> Tensor(a!)
// aten::scalar_tensor.out(Scalar s, *, Tensor(a!) out) -> Tensor(a!)
// aten::fill.Scalar_out(Tensor self, Scalar value, *, Tensor(a!) out) -> Tensor(a!)
// aten::arange.out(Scalar end, *, Tensor(a!) out) -> Tensor(a!)
// aten::arange.start_out(Scalar start, Scalar end, Scalar step=1, *, Tensor(a!) out) -> Tensor(a!)
#include <cmath>

#include "kernels/kernel_util.h"
#include "kernels/ops.h"

namespace ei::kernels {
namespace {

// Resizes out to `sizes` and sets every element to value (every layout is filled alike).
Status fill_output(const Args& args, Tensor& out, std::span<const int64_t> sizes, const Scalar& value) {
  EI_RETURN_IF_ERROR(resize_output(args, out, sizes));
  return dispatch<DtypeSet::kAll>(out.dtype, args.op(), "out", [&]<typename T>() {
    std::fill_n(out.data_as<T>(), out.numel(), value.to<T>());
    return Status::Ok();
  });
}

Scalar int_scalar(int64_t v) {
  Scalar s;
  s.tag = Tag::kInt;
  s.int_value = v;
  return s;
}

Status fill_sized(std::span<EValue* const> values, const char* name, std::optional<int64_t> constant) {
  Args args(name, values);
  const size_t schema_args = constant ? 2 : 3;
  EI_RETURN_IF_ERROR(args.check_count(schema_args, 1));
  EI_ASSIGN_OR_RETURN(std::vector<int64_t> sizes, args.int_list(0, "size"));
  EI_ASSIGN_OR_RETURN(Tensor * out, args.out_tensor(schema_args - 1, "out"));
  Scalar value = int_scalar(constant.value_or(0));
  if (!constant) {
    EI_ASSIGN_OR_RETURN(value, args.scalar(1, "fill_value"));
  }
  return fill_output(args, *out, sizes, value);
}

// Writes start + i * step for i in [0, count) into out.
Status write_range(const Args& args, size_t out_index, double start, double end, double step) {
  EI_ASSIGN_OR_RETURN(Tensor * out, args.out_tensor(out_index, "out"));
  if (!std::isfinite(start) || !std::isfinite(end) || !std::isfinite(step)) {
    return args.fail("end", "and the other bounds must be finite");
  }
  if (step == 0) return args.fail("step", "must be nonzero");
  if ((step > 0 && end < start) || (step < 0 && end > start)) {
    return args.fail("step", "has a sign inconsistent with the bounds start=" + std::to_string(start) +
                                 ", end=" + std::to_string(end));
  }
  const double count_value = std::ceil((end - start) / step);
  if (!(count_value >= 0 && count_value < 9007199254740992.0)) {
    return args.fail("end", "gives an element count out of range");
  }
  const std::vector<int64_t> sizes{static_cast<int64_t>(count_value)};
  EI_RETURN_IF_ERROR(resize_output(args, *out, sizes));
  return dispatch<DtypeSet::kReal>(out->dtype, args.op(), "out", [&]<typename T>() {
    T* data = out->data_as<T>();
    const int64_t n = out->numel();
    for (int64_t i = 0; i < n; ++i) data[i] = cast_value<T>(start + static_cast<double>(i) * step);
    return Status::Ok();
  });
}

}  // namespace

EI_DECLARE_KERNEL(full_out) { return fill_sized(values, "aten::full.out", std::nullopt); }
EI_DECLARE_KERNEL(zeros_out) { return fill_sized(values, "aten::zeros.out", 0); }
EI_DECLARE_KERNEL(ones_out) { return fill_sized(values, "aten::ones.out", 1); }

EI_DECLARE_KERNEL(full_like_out) {
  Args args("aten::full_like.out", values);
  EI_RETURN_IF_ERROR(args.check_count(4, 1));
  EI_ASSIGN_OR_RETURN(Tensor * self, args.tensor(0, "self"));
  EI_ASSIGN_OR_RETURN(Scalar value, args.scalar(1, "fill_value"));
  EI_ASSIGN_OR_RETURN(Tensor * out, args.out_tensor(3, "out"));
  const std::vector<int64_t> sizes = self->sizes;  // a copy: out may be self
  return fill_output(args, *out, sizes, value);
}

EI_DECLARE_KERNEL(fill_scalar_out) {
  Args args("aten::fill.Scalar_out", values);
  EI_RETURN_IF_ERROR(args.check_count(3, 1));
  EI_ASSIGN_OR_RETURN(Tensor * self, args.tensor(0, "self"));
  EI_ASSIGN_OR_RETURN(Scalar value, args.scalar(1, "value"));
  EI_ASSIGN_OR_RETURN(Tensor * out, args.out_tensor(2, "out"));
  const std::vector<int64_t> sizes = self->sizes;
  return fill_output(args, *out, sizes, value);
}

EI_DECLARE_KERNEL(scalar_tensor_out) {
  Args args("aten::scalar_tensor.out", values);
  EI_RETURN_IF_ERROR(args.check_count(2, 1));
  EI_ASSIGN_OR_RETURN(Scalar value, args.scalar(0, "s"));
  EI_ASSIGN_OR_RETURN(Tensor * out, args.out_tensor(1, "out"));
  return fill_output(args, *out, std::vector<int64_t>{}, value);
}

EI_DECLARE_KERNEL(arange_out) {
  Args args("aten::arange.out", values);
  EI_RETURN_IF_ERROR(args.check_count(2, 1));
  EI_ASSIGN_OR_RETURN(Scalar end, args.scalar(0, "end"));
  return write_range(args, 1, 0.0, end.to_double(), 1.0);
}

EI_DECLARE_KERNEL(arange_start_out) {
  Args args("aten::arange.start_out", values);
  EI_RETURN_IF_ERROR(args.check_count(4, 1));
  EI_ASSIGN_OR_RETURN(Scalar start, args.scalar(0, "start"));
  EI_ASSIGN_OR_RETURN(Scalar end, args.scalar(1, "end"));
  EI_ASSIGN_OR_RETURN(Scalar step, args.scalar(2, "step"));
  return write_range(args, 3, start.to_double(), end.to_double(), step.to_double());
}

}  // namespace ei::kernels
