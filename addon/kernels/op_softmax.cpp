// aten::_softmax.out(Tensor self, int dim, bool half_to_float, *, Tensor(a!) out) -> Tensor(a!)
// aten::_log_softmax.out(Tensor self, int dim, bool half_to_float, *, Tensor(a!) out) -> Tensor(a!)
//
// Each slice along dim subtracts its max before exponentiating, so large inputs do not
// overflow; the sum of exponentials accumulates in double.
#include <cmath>

#include "kernels/kernel_util.h"
#include "kernels/ops.h"

namespace ei::kernels {
namespace {

Status softmax(std::span<EValue* const> values, const char* name, bool log) {
  Args args(name, values);
  EI_RETURN_IF_ERROR(args.check_count(4, 1));
  EI_ASSIGN_OR_RETURN(Tensor * self, args.tensor(0, "self"));
  EI_ASSIGN_OR_RETURN(int64_t dim, args.int_value(1, "dim"));
  EI_ASSIGN_OR_RETURN(bool half_to_float, args.bool_value(2, "half_to_float"));
  EI_ASSIGN_OR_RETURN(Tensor * out, args.out_tensor(3, "out"));
  if (half_to_float) return args.fail("half_to_float", "is true, which is supported only for float16 inputs on CUDA");
  if (out->dtype != self->dtype) {
    return args.fail("out", "has dtype " + dtype_name(out->dtype) + ", expected self's dtype " + dtype_name(self->dtype));
  }
  EI_RETURN_IF_ERROR(require_default_dim_order(args, *self, "self"));
  EI_RETURN_IF_ERROR(require_default_dim_order(args, *out, "out"));
  const int64_t rank = self->dim();
  EI_ASSIGN_OR_RETURN(dim, wrap_dim(args, "dim", dim, rank));
  const std::vector<int64_t> sizes = self->sizes;
  EI_RETURN_IF_ERROR(resize_output(args, *out, sizes));
  if (out->numel() == 0) return Status::Ok();

  const int64_t length = rank == 0 ? 1 : sizes[dim];
  const int64_t outer = rank == 0 ? 1 : shape_numel(std::span(sizes).subspan(0, dim));
  const int64_t inner = rank == 0 ? 1 : shape_numel(std::span(sizes).subspan(dim + 1));
  return dispatch<DtypeSet::kFloating>(self->dtype, args.op(), "self", [&]<typename T>() {
    InputView<T> x(*self, out);  // in place is safe: each element is read before it is written
    T* y = out->data_as<T>();
    for (int64_t o = 0; o < outer; ++o) {
      for (int64_t i = 0; i < inner; ++i) {
        const int64_t base = o * length * inner + i;
        T max_value = x[base];
        for (int64_t k = 1; k < length; ++k) {
          const T v = x[base + k * inner];
          if (v > max_value || std::isnan(v)) max_value = v;
        }
        double sum = 0;
        for (int64_t k = 0; k < length; ++k) {
          const int64_t at = base + k * inner;
          const T shifted = x[at] - max_value;
          const T e = std::exp(shifted);
          sum += static_cast<double>(e);
          y[at] = log ? shifted : e;
        }
        if (log) {
          const T log_sum = static_cast<T>(std::log(sum));
          for (int64_t k = 0; k < length; ++k) y[base + k * inner] -= log_sum;
        } else {
          const double inverse = 1.0 / sum;
          for (int64_t k = 0; k < length; ++k) {
            T& v = y[base + k * inner];
            v = static_cast<T>(static_cast<double>(v) * inverse);
          }
        }
      }
    }
    return Status::Ok();
  });
}

}  // namespace

EI_DECLARE_KERNEL(softmax_out) { return softmax(values, "aten::_softmax.out", false); }
EI_DECLARE_KERNEL(log_softmax_out) { return softmax(values, "aten::_log_softmax.out", true); }

}  // namespace ei::kernels
