// aten::add.out(Tensor self, Tensor other, *, Scalar alpha=1, Tensor(a!) out) -> Tensor(a!)
// aten::add.Scalar_out(Tensor self, Scalar other, Scalar alpha=1, *, Tensor(a!) out) -> Tensor(a!)
// aten::sub.out(Tensor self, Tensor other, *, Scalar alpha=1, Tensor(a!) out) -> Tensor(a!)
// aten::sub.Scalar_out(Tensor self, Scalar other, Scalar alpha=1, *, Tensor(a!) out) -> Tensor(a!)
// aten::rsub.Scalar_out(Tensor self, Scalar other, Scalar alpha=1, *, Tensor(a!) out) -> Tensor(a!)
// aten::mul.out(Tensor self, Tensor other, *, Tensor(a!) out) -> Tensor(a!)
// aten::mul.Scalar_out(Tensor self, Scalar other, *, Tensor(a!) out) -> Tensor(a!)
// aten::div.out(Tensor self, Tensor other, *, Tensor(a!) out) -> Tensor(a!)
// aten::div.out_mode(Tensor self, Tensor other, *, str? rounding_mode, Tensor(a!) out) -> Tensor(a!)
// aten::div.Scalar_out(Tensor self, Scalar other, *, Tensor(a!) out) -> Tensor(a!)
// aten::div.Scalar_mode_out(Tensor self, Scalar other, *, str? rounding_mode, Tensor(a!) out) -> Tensor(a!)
// aten::floor_divide.out(Tensor self, Tensor other, *, Tensor(a!) out) -> Tensor(a!)
// aten::remainder.Tensor_out(Tensor self, Tensor other, *, Tensor(a!) out) -> Tensor(a!)
// aten::remainder.Scalar_out(Tensor self, Scalar other, *, Tensor(a!) out) -> Tensor(a!)
// aten::fmod.Tensor_out(Tensor self, Tensor other, *, Tensor(a!) out) -> Tensor(a!)
// aten::fmod.Scalar_out(Tensor self, Scalar other, *, Tensor(a!) out) -> Tensor(a!)
// aten::minimum.out(Tensor self, Tensor other, *, Tensor(a!) out) -> Tensor(a!)
// aten::maximum.out(Tensor self, Tensor other, *, Tensor(a!) out) -> Tensor(a!)
// aten::pow.Tensor_Scalar_out(Tensor self, Scalar exponent, *, Tensor(a!) out) -> Tensor(a!)
// aten::pow.Tensor_Tensor_out(Tensor self, Tensor exponent, *, Tensor(a!) out) -> Tensor(a!)
// aten::pow.Scalar_out(Scalar self, Tensor exponent, *, Tensor(a!) out) -> Tensor(a!)
// aten::atan2.out(Tensor self, Tensor other, *, Tensor(a!) out) -> Tensor(a!)
#include <cmath>

#include "kernels/kernel_util.h"
#include "kernels/ops.h"

namespace ei::kernels {
namespace {

constexpr std::string_view kSelfOther[] = {"self", "other"};

Status check_result_type(const Args& args, ScalarType common, const Tensor& out) {
  if (can_cast(common, out.dtype)) return Status::Ok();
  return args.fail("out", "has dtype " + dtype_name(out.dtype) + " but the result has dtype " +
                              dtype_name(common) + ", which cannot be cast to it");
}

// Applies fn(x, y) in the compute type of `common` over the broadcast of a and b.
template <typename Fn>
Status tensor_tensor_op(const Args& args, const Tensor& a, const Tensor& b, Tensor& out,
                        ScalarType common, Fn&& fn) {
  const Tensor* inputs[] = {&a, &b};
  EI_RETURN_IF_ERROR(check_elementwise_layout(args, inputs, kSelfOther, out));
  EI_RETURN_IF_ERROR(check_result_type(args, common, out));
  return dispatch_compute(common, args.op(), [&]<typename CT>() {
    return binary_map<CT, CT>(args, a, b, out, [&](CT x, CT y) { return static_cast<CT>(fn(x, y)); });
  });
}

// Applies fn(x, scalar) in the compute type of `common` over a.
template <typename Fn>
Status tensor_scalar_op(const Args& args, const Tensor& a, const Scalar& scalar, Tensor& out,
                        ScalarType common, Fn&& fn) {
  const Tensor* inputs[] = {&a};
  EI_RETURN_IF_ERROR(check_elementwise_layout(args, inputs, kSelfOther, out));
  EI_RETURN_IF_ERROR(check_result_type(args, common, out));
  return dispatch_compute(common, args.op(), [&]<typename CT>() {
    const CT y = scalar.to<CT>();
    return unary_map<CT, CT>(args, a, out, [&](CT x) { return static_cast<CT>(fn(x, y)); });
  });
}

// The alpha of add/sub: integral results reject a floating alpha, and bool results accept
// only a bool alpha, as ATen.
Status check_alpha(const Args& args, const Scalar& alpha, ScalarType common) {
  if (is_integral_type(common, false) && alpha.is_floating()) {
    return args.fail("alpha", "must be integral for an integral result");
  }
  if (common == ScalarType::kBool && !alpha.is_bool()) {
    return args.fail("alpha", "must be a Bool for a bool result");
  }
  return Status::Ok();
}

template <typename T>
T add_scaled(T x, T y, T alpha) {
  if constexpr (std::is_integral_v<T>) return wrapping_add(x, wrapping_mul(alpha, y));
  else return x + alpha * y;
}

template <typename T>
T sub_scaled(T x, T y, T alpha) {
  if constexpr (std::is_integral_v<T>) return wrapping_sub(x, wrapping_mul(alpha, y));
  else return x - alpha * y;
}

template <typename T>
T multiply(T x, T y) {
  if constexpr (std::is_integral_v<T>) return wrapping_mul(x, y);
  else return x * y;
}

// Python's floor division: the quotient rounded toward negative infinity, computed from
// fmod so that a == floor_div(a, b) * b + remainder(a, b) holds for floats.
template <typename T>
T floor_div(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    if (b == -1) return wrapping_sub(0, a);  // avoids the INT64_MIN / -1 overflow
    const T quotient = a / b;
    const T rem = a % b;
    return (rem != 0 && ((rem < 0) != (b < 0))) ? quotient - 1 : quotient;
  } else {
    if (b == 0) return a / b;  // inf, -inf or NaN, as IEEE division
    const T mod = std::fmod(a, b);
    T quotient = (a - mod) / b;
    if (mod != 0 && (b < 0) != (mod < 0)) quotient -= 1;
    T floored = std::floor(quotient);
    if (quotient - floored > T(0.5)) floored += 1;
    return floored;
  }
}

template <typename T>
T trunc_div(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    if (b == -1) return wrapping_sub(0, a);
    return a / b;
  } else {
    return std::trunc(a / b);
  }
}

// Python's modulo: the result has the sign of the divisor.
template <typename T>
T python_remainder(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    if (b == -1) return 0;
    T rem = a % b;
    if (rem != 0 && ((rem < 0) != (b < 0))) rem += b;
    return rem;
  } else {
    T rem = std::fmod(a, b);
    if (rem != 0 && ((rem < 0) != (b < 0))) rem += b;
    return rem;
  }
}

template <typename T>
T c_fmod(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    if (b == -1) return 0;
    return a % b;
  } else {
    return std::fmod(a, b);
  }
}

// Integer power by squaring; negative exponents give 1, +-1 or 0 as ATen's integer pow.
int64_t int_pow(int64_t base, int64_t exponent) {
  if (exponent < 0) {
    if (base == 1) return 1;
    if (base == -1) return (exponent % 2 == 0) ? 1 : -1;
    return 0;
  }
  int64_t result = 1;
  while (exponent > 0) {
    if (exponent & 1) result = wrapping_mul(result, base);
    base = wrapping_mul(base, base);
    exponent >>= 1;
  }
  return result;
}

template <typename T>
T power(T base, T exponent) {
  if constexpr (std::is_integral_v<T>) return int_pow(base, exponent);
  else return std::pow(base, exponent);
}

template <typename T>
T nan_min(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(a)) return a;
    if (std::isnan(b)) return b;
  }
  return std::min(a, b);
}

template <typename T>
T nan_max(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(a)) return a;
    if (std::isnan(b)) return b;
  }
  return std::max(a, b);
}

// The result type of true division: the promoted floating type, or float32 for integers.
ScalarType true_division_type(ScalarType a, ScalarType b) {
  const ScalarType common = promote_types(a, b);
  return is_floating_type(common) ? common : ScalarType::kFloat;
}

struct TensorTensorArgs {
  Tensor* a = nullptr;
  Tensor* b = nullptr;
  Tensor* out = nullptr;
};

// Reads [self, other, ..., out] with out at `out_index`.
Result<TensorTensorArgs> read_tensor_tensor(const Args& args, size_t out_index,
                                            std::string_view other_name = "other") {
  TensorTensorArgs t;
  EI_ASSIGN_OR_RETURN(t.a, args.tensor(0, "self"));
  EI_ASSIGN_OR_RETURN(t.b, args.tensor(1, other_name));
  EI_ASSIGN_OR_RETURN(t.out, args.out_tensor(out_index, "out"));
  return t;
}

Status add_or_sub(const Args& args, bool subtract) {
  EI_RETURN_IF_ERROR(args.check_count(4, 1));
  EI_ASSIGN_OR_RETURN(TensorTensorArgs t, read_tensor_tensor(args, 3));
  EI_ASSIGN_OR_RETURN(Scalar alpha, args.scalar(2, "alpha"));
  const ScalarType common = promote_types(t.a->dtype, t.b->dtype);
  if (subtract && common == ScalarType::kBool) {
    return args.fail("self", "and 'other' are bool, and subtraction of bool tensors is not supported");
  }
  EI_RETURN_IF_ERROR(check_alpha(args, alpha, common));
  return tensor_tensor_op(args, *t.a, *t.b, *t.out, common, [&]<typename T>(T x, T y) {
    return subtract ? sub_scaled(x, y, alpha.to<T>()) : add_scaled(x, y, alpha.to<T>());
  });
}

// rsub computes other - alpha * self.
Status add_or_sub_scalar(const Args& args, bool subtract, bool reverse) {
  EI_RETURN_IF_ERROR(args.check_count(4, 1));
  EI_ASSIGN_OR_RETURN(Tensor * a, args.tensor(0, "self"));
  EI_ASSIGN_OR_RETURN(Scalar other, args.scalar(1, "other"));
  EI_ASSIGN_OR_RETURN(Scalar alpha, args.scalar(2, "alpha"));
  EI_ASSIGN_OR_RETURN(Tensor * out, args.out_tensor(3, "out"));
  const ScalarType common = promote_type_with_scalar(a->dtype, other);
  if (subtract && common == ScalarType::kBool) {
    return args.fail("self", "is bool, and subtraction of bool values is not supported");
  }
  EI_RETURN_IF_ERROR(check_alpha(args, alpha, common));
  return tensor_scalar_op(args, *a, other, *out, common, [&]<typename T>(T x, T y) {
    if (reverse) return sub_scaled(y, x, alpha.to<T>());
    return subtract ? sub_scaled(x, y, alpha.to<T>()) : add_scaled(x, y, alpha.to<T>());
  });
}

Result<std::optional<std::string_view>> read_rounding_mode(const Args& args, size_t index) {
  EI_ASSIGN_OR_RETURN(std::optional<std::string_view> mode, args.optional_string(index, "rounding_mode"));
  if (mode && *mode != "trunc" && *mode != "floor") {
    return args.fail("rounding_mode", "is '" + std::string(*mode) + "', expected 'trunc', 'floor' or None");
  }
  return mode;
}

Status integer_division_by_zero(const Args& args) {
  return args.fail("other", "contains zero, and integer division by zero is undefined");
}

// Division with rounding (or the remainder ops): integral types stay integral and reject a
// zero divisor.
template <typename Fn>
Status rounded_division_tensor(const Args& args, const TensorTensorArgs& t, Fn&& fn) {
  const ScalarType common = promote_types(t.a->dtype, t.b->dtype);
  if (common == ScalarType::kBool) return args.fail("self", "and 'other' are bool, which this operator does not support");
  bool divided_by_zero = false;
  EI_RETURN_IF_ERROR(tensor_tensor_op(args, *t.a, *t.b, *t.out, common, [&]<typename T>(T x, T y) {
    if constexpr (std::is_integral_v<T>) {
      if (y == 0) {
        divided_by_zero = true;
        return T(0);
      }
    }
    return fn(x, y);
  }));
  return divided_by_zero ? integer_division_by_zero(args) : Status::Ok();
}

template <typename Fn>
Status rounded_division_scalar(const Args& args, const Tensor& a, const Scalar& other, Tensor& out,
                               Fn&& fn) {
  const ScalarType common = promote_type_with_scalar(a.dtype, other);
  if (common == ScalarType::kBool) return args.fail("self", "is bool, which this operator does not support");
  if (is_integral_type(common, false) && other.to_int() == 0) return integer_division_by_zero(args);
  return tensor_scalar_op(args, a, other, out, common, fn);
}

}  // namespace

EI_DECLARE_KERNEL(add_out) { return add_or_sub(Args("aten::add.out", values), false); }
EI_DECLARE_KERNEL(sub_out) { return add_or_sub(Args("aten::sub.out", values), true); }
EI_DECLARE_KERNEL(add_scalar_out) {
  return add_or_sub_scalar(Args("aten::add.Scalar_out", values), false, false);
}
EI_DECLARE_KERNEL(sub_scalar_out) {
  return add_or_sub_scalar(Args("aten::sub.Scalar_out", values), true, false);
}
EI_DECLARE_KERNEL(rsub_scalar_out) {
  return add_or_sub_scalar(Args("aten::rsub.Scalar_out", values), true, true);
}

EI_DECLARE_KERNEL(mul_out) {
  Args args("aten::mul.out", values);
  EI_RETURN_IF_ERROR(args.check_count(3, 1));
  EI_ASSIGN_OR_RETURN(TensorTensorArgs t, read_tensor_tensor(args, 2));
  const ScalarType common = promote_types(t.a->dtype, t.b->dtype);
  return tensor_tensor_op(args, *t.a, *t.b, *t.out, common,
                          []<typename T>(T x, T y) { return multiply(x, y); });
}

EI_DECLARE_KERNEL(mul_scalar_out) {
  Args args("aten::mul.Scalar_out", values);
  EI_RETURN_IF_ERROR(args.check_count(3, 1));
  EI_ASSIGN_OR_RETURN(Tensor * a, args.tensor(0, "self"));
  EI_ASSIGN_OR_RETURN(Scalar other, args.scalar(1, "other"));
  EI_ASSIGN_OR_RETURN(Tensor * out, args.out_tensor(2, "out"));
  const ScalarType common = promote_type_with_scalar(a->dtype, other);
  return tensor_scalar_op(args, *a, other, *out, common,
                          []<typename T>(T x, T y) { return multiply(x, y); });
}

namespace {

Status true_divide_tensor(const Args& args, const TensorTensorArgs& t) {
  const ScalarType common = true_division_type(t.a->dtype, t.b->dtype);
  return tensor_tensor_op(args, *t.a, *t.b, *t.out, common, []<typename T>(T x, T y) { return x / y; });
}

Status true_divide_scalar(const Args& args, const Tensor& a, const Scalar& other, Tensor& out) {
  const ScalarType common = is_floating_type(a.dtype) ? a.dtype : ScalarType::kFloat;
  return tensor_scalar_op(args, a, other, out, common, []<typename T>(T x, T y) { return x / y; });
}

template <typename T>
T divide_with_mode(T x, T y, bool trunc) {
  return trunc ? trunc_div(x, y) : floor_div(x, y);
}

}  // namespace

EI_DECLARE_KERNEL(div_out) {
  Args args("aten::div.out", values);
  EI_RETURN_IF_ERROR(args.check_count(3, 1));
  EI_ASSIGN_OR_RETURN(TensorTensorArgs t, read_tensor_tensor(args, 2));
  return true_divide_tensor(args, t);
}

EI_DECLARE_KERNEL(div_out_mode) {
  Args args("aten::div.out_mode", values);
  EI_RETURN_IF_ERROR(args.check_count(4, 1));
  EI_ASSIGN_OR_RETURN(TensorTensorArgs t, read_tensor_tensor(args, 3));
  EI_ASSIGN_OR_RETURN(std::optional<std::string_view> mode, read_rounding_mode(args, 2));
  if (!mode) return true_divide_tensor(args, t);
  const bool trunc = *mode == "trunc";
  return rounded_division_tensor(args, t, [&]<typename T>(T x, T y) { return divide_with_mode(x, y, trunc); });
}

EI_DECLARE_KERNEL(div_scalar_out) {
  Args args("aten::div.Scalar_out", values);
  EI_RETURN_IF_ERROR(args.check_count(3, 1));
  EI_ASSIGN_OR_RETURN(Tensor * a, args.tensor(0, "self"));
  EI_ASSIGN_OR_RETURN(Scalar other, args.scalar(1, "other"));
  EI_ASSIGN_OR_RETURN(Tensor * out, args.out_tensor(2, "out"));
  return true_divide_scalar(args, *a, other, *out);
}

EI_DECLARE_KERNEL(div_scalar_mode_out) {
  Args args("aten::div.Scalar_mode_out", values);
  EI_RETURN_IF_ERROR(args.check_count(4, 1));
  EI_ASSIGN_OR_RETURN(Tensor * a, args.tensor(0, "self"));
  EI_ASSIGN_OR_RETURN(Scalar other, args.scalar(1, "other"));
  EI_ASSIGN_OR_RETURN(std::optional<std::string_view> mode, read_rounding_mode(args, 2));
  EI_ASSIGN_OR_RETURN(Tensor * out, args.out_tensor(3, "out"));
  if (!mode) return true_divide_scalar(args, *a, other, *out);
  const bool trunc = *mode == "trunc";
  return rounded_division_scalar(args, *a, other, *out,
                                 [&]<typename T>(T x, T y) { return divide_with_mode(x, y, trunc); });
}

EI_DECLARE_KERNEL(floor_divide_out) {
  Args args("aten::floor_divide.out", values);
  EI_RETURN_IF_ERROR(args.check_count(3, 1));
  EI_ASSIGN_OR_RETURN(TensorTensorArgs t, read_tensor_tensor(args, 2));
  return rounded_division_tensor(args, t, []<typename T>(T x, T y) { return floor_div(x, y); });
}

EI_DECLARE_KERNEL(remainder_tensor_out) {
  Args args("aten::remainder.Tensor_out", values);
  EI_RETURN_IF_ERROR(args.check_count(3, 1));
  EI_ASSIGN_OR_RETURN(TensorTensorArgs t, read_tensor_tensor(args, 2));
  return rounded_division_tensor(args, t, []<typename T>(T x, T y) { return python_remainder(x, y); });
}

EI_DECLARE_KERNEL(remainder_scalar_out) {
  Args args("aten::remainder.Scalar_out", values);
  EI_RETURN_IF_ERROR(args.check_count(3, 1));
  EI_ASSIGN_OR_RETURN(Tensor * a, args.tensor(0, "self"));
  EI_ASSIGN_OR_RETURN(Scalar other, args.scalar(1, "other"));
  EI_ASSIGN_OR_RETURN(Tensor * out, args.out_tensor(2, "out"));
  return rounded_division_scalar(args, *a, other, *out,
                                 []<typename T>(T x, T y) { return python_remainder(x, y); });
}

EI_DECLARE_KERNEL(fmod_tensor_out) {
  Args args("aten::fmod.Tensor_out", values);
  EI_RETURN_IF_ERROR(args.check_count(3, 1));
  EI_ASSIGN_OR_RETURN(TensorTensorArgs t, read_tensor_tensor(args, 2));
  return rounded_division_tensor(args, t, []<typename T>(T x, T y) { return c_fmod(x, y); });
}

EI_DECLARE_KERNEL(fmod_scalar_out) {
  Args args("aten::fmod.Scalar_out", values);
  EI_RETURN_IF_ERROR(args.check_count(3, 1));
  EI_ASSIGN_OR_RETURN(Tensor * a, args.tensor(0, "self"));
  EI_ASSIGN_OR_RETURN(Scalar other, args.scalar(1, "other"));
  EI_ASSIGN_OR_RETURN(Tensor * out, args.out_tensor(2, "out"));
  return rounded_division_scalar(args, *a, other, *out, []<typename T>(T x, T y) { return c_fmod(x, y); });
}

EI_DECLARE_KERNEL(minimum_out) {
  Args args("aten::minimum.out", values);
  EI_RETURN_IF_ERROR(args.check_count(3, 1));
  EI_ASSIGN_OR_RETURN(TensorTensorArgs t, read_tensor_tensor(args, 2));
  const ScalarType common = promote_types(t.a->dtype, t.b->dtype);
  return tensor_tensor_op(args, *t.a, *t.b, *t.out, common, []<typename T>(T x, T y) { return nan_min(x, y); });
}

EI_DECLARE_KERNEL(maximum_out) {
  Args args("aten::maximum.out", values);
  EI_RETURN_IF_ERROR(args.check_count(3, 1));
  EI_ASSIGN_OR_RETURN(TensorTensorArgs t, read_tensor_tensor(args, 2));
  const ScalarType common = promote_types(t.a->dtype, t.b->dtype);
  return tensor_tensor_op(args, *t.a, *t.b, *t.out, common, []<typename T>(T x, T y) { return nan_max(x, y); });
}

EI_DECLARE_KERNEL(pow_tensor_scalar_out) {
  Args args("aten::pow.Tensor_Scalar_out", values);
  EI_RETURN_IF_ERROR(args.check_count(3, 1));
  EI_ASSIGN_OR_RETURN(Tensor * a, args.tensor(0, "self"));
  EI_ASSIGN_OR_RETURN(Scalar exponent, args.scalar(1, "exponent"));
  EI_ASSIGN_OR_RETURN(Tensor * out, args.out_tensor(2, "out"));
  ScalarType common = promote_type_with_scalar(a->dtype, exponent);
  if (common == ScalarType::kBool) common = ScalarType::kByte;  // bool ** bool counts as uint8
  if (is_integral_type(common, false) && exponent.to_int() < 0 && !exponent.is_floating()) {
    return args.fail("exponent", "is negative, and integers to negative integer powers are not allowed");
  }
  return tensor_scalar_op(args, *a, exponent, *out, common, []<typename T>(T x, T y) {
    if constexpr (std::is_floating_point_v<T>) {
      if (y == T(2)) return x * x;  // the square is the most common exponent and exact this way
    }
    return power(x, y);
  });
}

EI_DECLARE_KERNEL(pow_tensor_tensor_out) {
  Args args("aten::pow.Tensor_Tensor_out", values);
  EI_RETURN_IF_ERROR(args.check_count(3, 1));
  EI_ASSIGN_OR_RETURN(TensorTensorArgs t, read_tensor_tensor(args, 2, "exponent"));
  ScalarType common = promote_types(t.a->dtype, t.b->dtype);
  if (common == ScalarType::kBool) common = ScalarType::kByte;
  return tensor_tensor_op(args, *t.a, *t.b, *t.out, common, []<typename T>(T x, T y) { return power(x, y); });
}

EI_DECLARE_KERNEL(pow_scalar_out) {
  Args args("aten::pow.Scalar_out", values);
  EI_RETURN_IF_ERROR(args.check_count(3, 1));
  EI_ASSIGN_OR_RETURN(Scalar base, args.scalar(0, "self"));
  EI_ASSIGN_OR_RETURN(Tensor * exponent, args.tensor(1, "exponent"));
  EI_ASSIGN_OR_RETURN(Tensor * out, args.out_tensor(2, "out"));
  ScalarType common = promote_type_with_scalar(exponent->dtype, base);
  if (common == ScalarType::kBool) common = ScalarType::kByte;
  return tensor_scalar_op(args, *exponent, base, *out, common,
                          []<typename T>(T x, T y) { return power(y, x); });
}

EI_DECLARE_KERNEL(atan2_out) {
  Args args("aten::atan2.out", values);
  EI_RETURN_IF_ERROR(args.check_count(3, 1));
  EI_ASSIGN_OR_RETURN(TensorTensorArgs t, read_tensor_tensor(args, 2));
  const ScalarType common = true_division_type(t.a->dtype, t.b->dtype);
  return tensor_tensor_op(args, *t.a, *t.b, *t.out, common,
                          []<typename T>(T x, T y) { return std::atan2(x, y); });
}

}  // namespace ei::kernels
