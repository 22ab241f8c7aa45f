// aten::where.self_out(Tensor condition, Tensor self, Tensor other, *, Tensor(a!) out) -> Tensor(a!)
// aten::masked_fill.Scalar_out(Tensor self, Tensor mask, Scalar value, *, Tensor(a!) out) -> Tensor(a!)
#include "kernels/kernel_util.h"
#include "kernels/ops.h"

namespace ei::kernels {

EI_DECLARE_KERNEL(where_self_out) {
  Args args("aten::where.self_out", values);
  EI_RETURN_IF_ERROR(args.check_count(4, 1));
  EI_ASSIGN_OR_RETURN(Tensor * condition, args.tensor(0, "condition"));
  EI_ASSIGN_OR_RETURN(Tensor * a, args.tensor(1, "self"));
  EI_ASSIGN_OR_RETURN(Tensor * b, args.tensor(2, "other"));
  EI_ASSIGN_OR_RETURN(Tensor * out, args.out_tensor(3, "out"));
  if (condition->dtype != ScalarType::kBool && condition->dtype != ScalarType::kByte) {
    return args.fail("condition", "has dtype " + dtype_name(condition->dtype) + ", expected bool or uint8");
  }
  const Tensor* inputs[] = {condition, a, b};
  constexpr std::string_view kNames[] = {"condition", "self", "other"};
  EI_RETURN_IF_ERROR(check_elementwise_layout(args, inputs, kNames, *out));
  const ScalarType common = promote_types(a->dtype, b->dtype);
  if (!can_cast(common, out->dtype)) {
    return args.fail("out", "has dtype " + dtype_name(out->dtype) + " but the result has dtype " + dtype_name(common));
  }

  EI_ASSIGN_OR_RETURN(std::vector<int64_t> ab_shape, broadcast_shapes(args, a->sizes, b->sizes));
  EI_ASSIGN_OR_RETURN(std::vector<int64_t> shape, broadcast_shapes(args, condition->sizes, ab_shape));
  EI_RETURN_IF_ERROR(resize_output(args, *out, shape));
  return dispatch<DtypeSet::kAll>(common, args.op(), "self", [&]<typename CT>() {
    InputView<bool> cond(*condition, out);
    InputView<CT> x(*a, out);
    InputView<CT> y(*b, out);
    OutputView<CT> result(*out);
    broadcast_for_each<3>(out->sizes,
                          {std::span<const int64_t>(condition->sizes), std::span<const int64_t>(a->sizes),
                           std::span<const int64_t>(b->sizes)},
                          [&](int64_t i, const std::array<int64_t, 3>& idx) {
                            result[i] = cond[idx[0]] ? x[idx[1]] : y[idx[2]];
                          });
    result.commit();
    return Status::Ok();
  });
}

EI_DECLARE_KERNEL(masked_fill_scalar_out) {
  Args args("aten::masked_fill.Scalar_out", values);
  EI_RETURN_IF_ERROR(args.check_count(4, 1));
  EI_ASSIGN_OR_RETURN(Tensor * a, args.tensor(0, "self"));
  EI_ASSIGN_OR_RETURN(Tensor * mask, args.tensor(1, "mask"));
  EI_ASSIGN_OR_RETURN(Scalar value, args.scalar(2, "value"));
  EI_ASSIGN_OR_RETURN(Tensor * out, args.out_tensor(3, "out"));
  if (mask->dtype != ScalarType::kBool) {
    return args.fail("mask", "has dtype " + dtype_name(mask->dtype) + ", expected bool");
  }
  if (out->dtype != a->dtype) {
    return args.fail("out", "has dtype " + dtype_name(out->dtype) + ", expected self's dtype " + dtype_name(a->dtype));
  }
  const Tensor* inputs[] = {a, mask};
  constexpr std::string_view kNames[] = {"self", "mask"};
  EI_RETURN_IF_ERROR(check_elementwise_layout(args, inputs, kNames, *out));
  // The mask broadcasts to self; the result keeps self's shape.
  EI_ASSIGN_OR_RETURN(std::vector<int64_t> shape, broadcast_shapes(args, a->sizes, mask->sizes));
  if (shape != a->sizes) {
    return args.fail("mask", "of shape " + shape_to_string(mask->sizes) + " does not broadcast to self's shape " +
                                 shape_to_string(a->sizes));
  }
  return dispatch<DtypeSet::kAll>(a->dtype, args.op(), "self", [&]<typename T>() {
    const T fill = value.to<T>();
    return binary_map<T, T>(args, *a, *mask, *out, [fill](T x, T m) { return m ? fill : x; });
  });
}

}  // namespace ei::kernels
