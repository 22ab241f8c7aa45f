// aten::eq.Tensor_out(Tensor self, Tensor other, *, Tensor(a!) out) -> Tensor(a!)
// aten::eq.Scalar_out(Tensor self, Scalar other, *, Tensor(a!) out) -> Tensor(a!)
// (and likewise ne, lt, le, gt, ge)
// aten::logical_and.out(Tensor self, Tensor other, *, Tensor(a!) out) -> Tensor(a!)
// aten::logical_or.out(Tensor self, Tensor other, *, Tensor(a!) out) -> Tensor(a!)
// aten::logical_xor.out(Tensor self, Tensor other, *, Tensor(a!) out) -> Tensor(a!)
// aten::bitwise_and.Tensor_out(Tensor self, Tensor other, *, Tensor(a!) out) -> Tensor(a!)
// aten::bitwise_and.Scalar_out(Tensor self, Scalar other, *, Tensor(a!) out) -> Tensor(a!)
// (and likewise bitwise_or, bitwise_xor)
#include <functional>

#include "kernels/kernel_util.h"
#include "kernels/ops.h"

namespace ei::kernels {
namespace {

constexpr std::string_view kSelfOther[] = {"self", "other"};

enum class Comparison { kEq, kNe, kLt, kLe, kGt, kGe };

template <typename T>
bool compare(Comparison op, T x, T y) {
  switch (op) {
    case Comparison::kEq: return x == y;
    case Comparison::kNe: return x != y;
    case Comparison::kLt: return x < y;
    case Comparison::kLe: return x <= y;
    case Comparison::kGt: return x > y;
    case Comparison::kGe: return x >= y;
  }
  return false;
}

// The result is computed as bool and converted to out's dtype, which may be any dtype.
Status compare_tensor(std::span<EValue* const> values, const char* name, Comparison op) {
  Args args(name, values);
  EI_RETURN_IF_ERROR(args.check_count(3, 1));
  EI_ASSIGN_OR_RETURN(Tensor * a, args.tensor(0, "self"));
  EI_ASSIGN_OR_RETURN(Tensor * b, args.tensor(1, "other"));
  EI_ASSIGN_OR_RETURN(Tensor * out, args.out_tensor(2, "out"));
  const Tensor* inputs[] = {a, b};
  EI_RETURN_IF_ERROR(check_elementwise_layout(args, inputs, kSelfOther, *out));
  const ScalarType common = promote_types(a->dtype, b->dtype);
  return dispatch<DtypeSet::kAll>(common, args.op(), "self", [&]<typename CT>() {
    return binary_map<CT, bool>(args, *a, *b, *out, [op](CT x, CT y) { return compare(op, x, y); });
  });
}

Status compare_scalar(std::span<EValue* const> values, const char* name, Comparison op) {
  Args args(name, values);
  EI_RETURN_IF_ERROR(args.check_count(3, 1));
  EI_ASSIGN_OR_RETURN(Tensor * a, args.tensor(0, "self"));
  EI_ASSIGN_OR_RETURN(Scalar other, args.scalar(1, "other"));
  EI_ASSIGN_OR_RETURN(Tensor * out, args.out_tensor(2, "out"));
  const Tensor* inputs[] = {a};
  EI_RETURN_IF_ERROR(check_elementwise_layout(args, inputs, kSelfOther, *out));
  const ScalarType common = promote_type_with_scalar(a->dtype, other);
  return dispatch<DtypeSet::kAll>(common, args.op(), "self", [&]<typename CT>() {
    const CT y = other.to<CT>();
    return unary_map<CT, bool>(args, *a, *out, [op, y](CT x) { return compare(op, x, y); });
  });
}

template <typename Fn>
Status logical_binary(std::span<EValue* const> values, const char* name, Fn fn) {
  Args args(name, values);
  EI_RETURN_IF_ERROR(args.check_count(3, 1));
  EI_ASSIGN_OR_RETURN(Tensor * a, args.tensor(0, "self"));
  EI_ASSIGN_OR_RETURN(Tensor * b, args.tensor(1, "other"));
  EI_ASSIGN_OR_RETURN(Tensor * out, args.out_tensor(2, "out"));
  const Tensor* inputs[] = {a, b};
  EI_RETURN_IF_ERROR(check_elementwise_layout(args, inputs, kSelfOther, *out));
  return binary_map<bool, bool>(args, *a, *b, *out, fn);
}

template <typename Fn>
Status bitwise_tensor(std::span<EValue* const> values, const char* name, Fn fn) {
  Args args(name, values);
  EI_RETURN_IF_ERROR(args.check_count(3, 1));
  EI_ASSIGN_OR_RETURN(Tensor * a, args.tensor(0, "self"));
  EI_ASSIGN_OR_RETURN(Tensor * b, args.tensor(1, "other"));
  EI_ASSIGN_OR_RETURN(Tensor * out, args.out_tensor(2, "out"));
  const Tensor* inputs[] = {a, b};
  EI_RETURN_IF_ERROR(check_elementwise_layout(args, inputs, kSelfOther, *out));
  const ScalarType common = promote_types(a->dtype, b->dtype);
  if (!is_integral_type(common, true)) return unsupported_dtype(args.op(), "self", common);
  if (!can_cast(common, out->dtype)) return unsupported_dtype(args.op(), "out", out->dtype);
  return binary_map<int64_t, int64_t>(args, *a, *b, *out, fn);
}

template <typename Fn>
Status bitwise_scalar(std::span<EValue* const> values, const char* name, Fn fn) {
  Args args(name, values);
  EI_RETURN_IF_ERROR(args.check_count(3, 1));
  EI_ASSIGN_OR_RETURN(Tensor * a, args.tensor(0, "self"));
  EI_ASSIGN_OR_RETURN(Scalar other, args.scalar(1, "other"));
  EI_ASSIGN_OR_RETURN(Tensor * out, args.out_tensor(2, "out"));
  const Tensor* inputs[] = {a};
  EI_RETURN_IF_ERROR(check_elementwise_layout(args, inputs, kSelfOther, *out));
  const ScalarType common = promote_type_with_scalar(a->dtype, other);
  if (!is_integral_type(common, true)) return unsupported_dtype(args.op(), "self", common);
  if (!can_cast(common, out->dtype)) return unsupported_dtype(args.op(), "out", out->dtype);
  const int64_t y = other.to_int();
  return unary_map<int64_t, int64_t>(args, *a, *out, [&](int64_t x) { return fn(x, y); });
}

}  // namespace

EI_DECLARE_KERNEL(eq_tensor_out) { return compare_tensor(values, "aten::eq.Tensor_out", Comparison::kEq); }
EI_DECLARE_KERNEL(ne_tensor_out) { return compare_tensor(values, "aten::ne.Tensor_out", Comparison::kNe); }
EI_DECLARE_KERNEL(lt_tensor_out) { return compare_tensor(values, "aten::lt.Tensor_out", Comparison::kLt); }
EI_DECLARE_KERNEL(le_tensor_out) { return compare_tensor(values, "aten::le.Tensor_out", Comparison::kLe); }
EI_DECLARE_KERNEL(gt_tensor_out) { return compare_tensor(values, "aten::gt.Tensor_out", Comparison::kGt); }
EI_DECLARE_KERNEL(ge_tensor_out) { return compare_tensor(values, "aten::ge.Tensor_out", Comparison::kGe); }
EI_DECLARE_KERNEL(eq_scalar_out) { return compare_scalar(values, "aten::eq.Scalar_out", Comparison::kEq); }
EI_DECLARE_KERNEL(ne_scalar_out) { return compare_scalar(values, "aten::ne.Scalar_out", Comparison::kNe); }
EI_DECLARE_KERNEL(lt_scalar_out) { return compare_scalar(values, "aten::lt.Scalar_out", Comparison::kLt); }
EI_DECLARE_KERNEL(le_scalar_out) { return compare_scalar(values, "aten::le.Scalar_out", Comparison::kLe); }
EI_DECLARE_KERNEL(gt_scalar_out) { return compare_scalar(values, "aten::gt.Scalar_out", Comparison::kGt); }
EI_DECLARE_KERNEL(ge_scalar_out) { return compare_scalar(values, "aten::ge.Scalar_out", Comparison::kGe); }

EI_DECLARE_KERNEL(logical_and_out) {
  return logical_binary(values, "aten::logical_and.out", [](bool x, bool y) { return x && y; });
}
EI_DECLARE_KERNEL(logical_or_out) {
  return logical_binary(values, "aten::logical_or.out", [](bool x, bool y) { return x || y; });
}
EI_DECLARE_KERNEL(logical_xor_out) {
  return logical_binary(values, "aten::logical_xor.out", [](bool x, bool y) { return x != y; });
}

EI_DECLARE_KERNEL(bitwise_and_tensor_out) {
  return bitwise_tensor(values, "aten::bitwise_and.Tensor_out", std::bit_and<int64_t>());
}
EI_DECLARE_KERNEL(bitwise_or_tensor_out) {
  return bitwise_tensor(values, "aten::bitwise_or.Tensor_out", std::bit_or<int64_t>());
}
EI_DECLARE_KERNEL(bitwise_xor_tensor_out) {
  return bitwise_tensor(values, "aten::bitwise_xor.Tensor_out", std::bit_xor<int64_t>());
}
EI_DECLARE_KERNEL(bitwise_and_scalar_out) {
  return bitwise_scalar(values, "aten::bitwise_and.Scalar_out", std::bit_and<int64_t>());
}
EI_DECLARE_KERNEL(bitwise_or_scalar_out) {
  return bitwise_scalar(values, "aten::bitwise_or.Scalar_out", std::bit_or<int64_t>());
}
EI_DECLARE_KERNEL(bitwise_xor_scalar_out) {
  return bitwise_scalar(values, "aten::bitwise_xor.Scalar_out", std::bit_xor<int64_t>());
}

}  // namespace ei::kernels
