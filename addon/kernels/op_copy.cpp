// aten::clone.out(Tensor self, *, MemoryFormat? memory_format=None, Tensor(a!) out) -> Tensor(a!)
// aten::alias_copy.out(Tensor self, *, Tensor(a!) out) -> Tensor(a!)
// aten::detach_copy.out(Tensor self, *, Tensor(a!) out) -> Tensor(a!)
// aten::lift_fresh_copy.out(Tensor self, *, Tensor(a!) out) -> Tensor(a!)
// aten::_to_copy.out(Tensor self, *, bool non_blocking=False, MemoryFormat? memory_format=None, Tensor(a!) out) -> Tensor(a!)
// dim_order_ops::_to_dim_order_copy.out(Tensor self, *, bool non_blocking=False, int[]? dim_order=None, Tensor(a!) out) -> Tensor(a!)
// dim_order_ops::_clone_dim_order.out(Tensor self, *, bool non_blocking=False, int[]? dim_order=None, Tensor(a!) out) -> Tensor(a!)
//
// Copies keep the logical values and take out's dim order, converting between layouts
// through the strides of each tensor's dim order.
#include "kernels/kernel_util.h"
#include "kernels/ops.h"

namespace ei::kernels {
namespace {

// Copies self into out, converting the dtype when allow_conversion is set.
Status copy_to(const Args& args, const Tensor& self, Tensor& out, bool allow_conversion) {
  if (!allow_conversion && out.dtype != self.dtype) {
    return args.fail("out", "has dtype " + dtype_name(out.dtype) + ", expected self's dtype " + dtype_name(self.dtype));
  }
  if (out.dim_order.size() != self.dim_order.size()) {
    return args.fail("out", "has rank " + std::to_string(out.dim_order.size()) + ", expected self's rank " +
                                std::to_string(self.dim_order.size()));
  }
  EI_RETURN_IF_ERROR(resize_output(args, out, self.sizes));
  if (out.dtype == self.dtype) {
    copy_between_layouts(self, out);
    return Status::Ok();
  }
  // Convert in self's layout into a temporary, then move the values into out's layout.
  const size_t count = static_cast<size_t>(self.numel());
  const size_t out_bytes = element_size(out.dtype);
  auto converted = std::make_unique<std::byte[]>(count * out_bytes + 1);
  convert_elements(self.data, self.dtype, converted.get(), out.dtype, count);
  strided_copy(converted.get(), strides_for(self.sizes, self.dim_order), 0, out.data,
               strides_for(out.sizes, out.dim_order), self.sizes, out_bytes);
  return Status::Ok();
}

Status plain_copy(std::span<EValue* const> values, const char* name) {
  Args args(name, values);
  EI_RETURN_IF_ERROR(args.check_count(2, 1));
  EI_ASSIGN_OR_RETURN(Tensor * self, args.tensor(0, "self"));
  EI_ASSIGN_OR_RETURN(Tensor * out, args.out_tensor(1, "out"));
  return copy_to(args, *self, *out, false);
}

// The dim_order argument must be a permutation and equal out's dim order; None keeps
// self's dim order.
Status check_dim_order_arg(const Args& args, const Tensor& self, const Tensor& out) {
  EI_ASSIGN_OR_RETURN(std::optional<std::vector<int64_t>> dim_order, args.optional_int_list(2, "dim_order"));
  if (!dim_order) {
    if (out.dim_order != self.dim_order) {
      return args.fail("out", "must have self's dim order when dim_order is None");
    }
    return Status::Ok();
  }
  const size_t rank = self.sizes.size();
  if (dim_order->size() != rank) {
    return args.fail("dim_order", "has " + std::to_string(dim_order->size()) + " entries for a tensor of rank " +
                                      std::to_string(rank));
  }
  std::vector<bool> seen(rank, false);
  for (int64_t d : *dim_order) {
    if (d < 0 || d >= static_cast<int64_t>(rank) || seen[d]) {
      return args.fail("dim_order", shape_to_string(*dim_order) + " is not a permutation of the dims");
    }
    seen[d] = true;
  }
  if (out.dim_order.size() != rank ||
      !std::equal(dim_order->begin(), dim_order->end(), out.dim_order.begin(),
                  [](int64_t a, uint8_t b) { return a == static_cast<int64_t>(b); })) {
    return args.fail("out", "has a dim order other than the requested " + shape_to_string(*dim_order));
  }
  return Status::Ok();
}

}  // namespace

EI_DECLARE_KERNEL(clone_out) {
  Args args("aten::clone.out", values);
  EI_RETURN_IF_ERROR(args.check_count(3, 1));
  EI_ASSIGN_OR_RETURN(Tensor * self, args.tensor(0, "self"));
  EI_ASSIGN_OR_RETURN(Tensor * out, args.out_tensor(2, "out"));
  // memory_format (index 1) is already reflected in out's planned dim order.
  return copy_to(args, *self, *out, false);
}

EI_DECLARE_KERNEL(alias_copy_out) { return plain_copy(values, "aten::alias_copy.out"); }
EI_DECLARE_KERNEL(detach_copy_out) { return plain_copy(values, "aten::detach_copy.out"); }
EI_DECLARE_KERNEL(lift_fresh_copy_out) { return plain_copy(values, "aten::lift_fresh_copy.out"); }

EI_DECLARE_KERNEL(to_copy_out) {
  Args args("aten::_to_copy.out", values);
  EI_RETURN_IF_ERROR(args.check_count(4, 1));
  EI_ASSIGN_OR_RETURN(Tensor * self, args.tensor(0, "self"));
  EI_ASSIGN_OR_RETURN(bool non_blocking, args.bool_value(1, "non_blocking"));
  EI_ASSIGN_OR_RETURN(Tensor * out, args.out_tensor(3, "out"));
  (void)non_blocking;  // copies are always synchronous here
  return copy_to(args, *self, *out, true);
}

EI_DECLARE_KERNEL(to_dim_order_copy_out) {
  Args args("dim_order_ops::_to_dim_order_copy.out", values);
  EI_RETURN_IF_ERROR(args.check_count(4, 1));
  EI_ASSIGN_OR_RETURN(Tensor * self, args.tensor(0, "self"));
  EI_ASSIGN_OR_RETURN(bool non_blocking, args.bool_value(1, "non_blocking"));
  EI_ASSIGN_OR_RETURN(Tensor * out, args.out_tensor(3, "out"));
  (void)non_blocking;
  EI_RETURN_IF_ERROR(check_dim_order_arg(args, *self, *out));
  return copy_to(args, *self, *out, true);
}

EI_DECLARE_KERNEL(clone_dim_order_out) {
  Args args("dim_order_ops::_clone_dim_order.out", values);
  EI_RETURN_IF_ERROR(args.check_count(4, 1));
  EI_ASSIGN_OR_RETURN(Tensor * self, args.tensor(0, "self"));
  EI_ASSIGN_OR_RETURN(bool non_blocking, args.bool_value(1, "non_blocking"));
  EI_ASSIGN_OR_RETURN(Tensor * out, args.out_tensor(3, "out"));
  (void)non_blocking;
  EI_RETURN_IF_ERROR(check_dim_order_arg(args, *self, *out));
  return copy_to(args, *self, *out, false);
}

}  // namespace ei::kernels
