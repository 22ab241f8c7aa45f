// aten::exp.out(Tensor self, *, Tensor(a!) out) -> Tensor(a!)
// (and likewise expm1, log, log2, log10, log1p, sqrt, rsqrt, reciprocal, sin, cos, tan, asin,
// acos, atan, sinh, cosh, tanh, asinh, acosh, atanh, erf, sigmoid, neg, abs, floor, ceil,
// round, trunc, logical_not, bitwise_not, isnan, isinf)
#include <cmath>

#include "kernels/kernel_util.h"
#include "kernels/ops.h"

namespace ei::kernels {
namespace {

constexpr std::string_view kSelf[] = {"self"};

struct UnaryArgs {
  Tensor* a = nullptr;
  Tensor* out = nullptr;
};

Result<UnaryArgs> read_unary(const Args& args) {
  EI_RETURN_IF_ERROR(args.check_count(2, 1));
  UnaryArgs u;
  EI_ASSIGN_OR_RETURN(u.a, args.tensor(0, "self"));
  EI_ASSIGN_OR_RETURN(u.out, args.out_tensor(1, "out"));
  const Tensor* inputs[] = {u.a};
  EI_RETURN_IF_ERROR(check_elementwise_layout(args, inputs, kSelf, *u.out));
  return u;
}

// A floating function: integral inputs compute in float32, and out must be floating.
template <typename Fn>
Status floating_unary(std::span<EValue* const> values, const char* name, Fn fn) {
  Args args(name, values);
  EI_ASSIGN_OR_RETURN(UnaryArgs u, read_unary(args));
  const ScalarType common = is_floating_type(u.a->dtype) ? u.a->dtype : ScalarType::kFloat;
  if (!is_floating_type(u.out->dtype)) {
    return args.fail("out", "has dtype " + dtype_name(u.out->dtype) + ", expected a floating dtype");
  }
  return dispatch<DtypeSet::kFloating>(common, args.op(), "self", [&]<typename T>() {
    return unary_map<T, T>(args, *u.a, *u.out, [&](T x) { return static_cast<T>(fn(x)); });
  });
}

// A function that keeps the input's dtype; integral and bool inputs compute in int64.
template <typename Fn>
Status same_type_unary(std::span<EValue* const> values, const char* name, bool allow_bool, Fn fn) {
  Args args(name, values);
  EI_ASSIGN_OR_RETURN(UnaryArgs u, read_unary(args));
  if (!allow_bool && u.a->dtype == ScalarType::kBool) return unsupported_dtype(args.op(), "self", u.a->dtype);
  if (!can_cast(u.a->dtype, u.out->dtype)) {
    return args.fail("out", "has dtype " + dtype_name(u.out->dtype) + ", which self's dtype " +
                                dtype_name(u.a->dtype) + " cannot be cast to");
  }
  return dispatch_compute(u.a->dtype, args.op(), [&]<typename T>() {
    return unary_map<T, T>(args, *u.a, *u.out, [&](T x) { return static_cast<T>(fn(x)); });
  });
}

// A predicate with a bool result stored in out's dtype.
template <typename Fn>
Status predicate_unary(std::span<EValue* const> values, const char* name, Fn fn) {
  Args args(name, values);
  EI_ASSIGN_OR_RETURN(UnaryArgs u, read_unary(args));
  return dispatch_compute(u.a->dtype, args.op(), [&]<typename T>() {
    return unary_map<T, bool>(args, *u.a, *u.out, [&](T x) { return fn(x); });
  });
}

// Rounding leaves integral values unchanged.
template <typename Fn>
Status rounding_unary(std::span<EValue* const> values, const char* name, Fn fn) {
  return same_type_unary(values, name, false, [&]<typename T>(T x) {
    if constexpr (std::is_floating_point_v<T>) return fn(x);
    else return x;
  });
}

}  // namespace

#define EI_FLOATING_UNARY(kernel, name, expression) \
  EI_DECLARE_KERNEL(kernel) {                        \
    return floating_unary(values, name, []<typename T>(T x) { return expression; }); \
  }

EI_FLOATING_UNARY(exp_out, "aten::exp.out", std::exp(x))
EI_FLOATING_UNARY(expm1_out, "aten::expm1.out", std::expm1(x))
EI_FLOATING_UNARY(log_out, "aten::log.out", std::log(x))
EI_FLOATING_UNARY(log2_out, "aten::log2.out", std::log2(x))
EI_FLOATING_UNARY(log10_out, "aten::log10.out", std::log10(x))
EI_FLOATING_UNARY(log1p_out, "aten::log1p.out", std::log1p(x))
EI_FLOATING_UNARY(sqrt_out, "aten::sqrt.out", std::sqrt(x))
EI_FLOATING_UNARY(rsqrt_out, "aten::rsqrt.out", T(1) / std::sqrt(x))
EI_FLOATING_UNARY(reciprocal_out, "aten::reciprocal.out", T(1) / x)
EI_FLOATING_UNARY(sin_out, "aten::sin.out", std::sin(x))
EI_FLOATING_UNARY(cos_out, "aten::cos.out", std::cos(x))
EI_FLOATING_UNARY(tan_out, "aten::tan.out", std::tan(x))
EI_FLOATING_UNARY(asin_out, "aten::asin.out", std::asin(x))
EI_FLOATING_UNARY(acos_out, "aten::acos.out", std::acos(x))
EI_FLOATING_UNARY(atan_out, "aten::atan.out", std::atan(x))
EI_FLOATING_UNARY(sinh_out, "aten::sinh.out", std::sinh(x))
EI_FLOATING_UNARY(cosh_out, "aten::cosh.out", std::cosh(x))
EI_FLOATING_UNARY(tanh_out, "aten::tanh.out", std::tanh(x))
EI_FLOATING_UNARY(asinh_out, "aten::asinh.out", std::asinh(x))
EI_FLOATING_UNARY(acosh_out, "aten::acosh.out", std::acosh(x))
EI_FLOATING_UNARY(atanh_out, "aten::atanh.out", std::atanh(x))
EI_FLOATING_UNARY(erf_out, "aten::erf.out", std::erf(x))
EI_FLOATING_UNARY(sigmoid_out, "aten::sigmoid.out", T(1) / (T(1) + std::exp(-x)))

#undef EI_FLOATING_UNARY

EI_DECLARE_KERNEL(neg_out) {
  return same_type_unary(values, "aten::neg.out", false, []<typename T>(T x) {
    if constexpr (std::is_integral_v<T>) return wrapping_sub(0, x);
    else return -x;
  });
}

EI_DECLARE_KERNEL(abs_out) {
  return same_type_unary(values, "aten::abs.out", true, []<typename T>(T x) {
    if constexpr (std::is_integral_v<T>) return x < 0 ? wrapping_sub(0, x) : x;
    else return std::fabs(x);
  });
}

EI_DECLARE_KERNEL(floor_out) {
  return rounding_unary(values, "aten::floor.out", [](auto x) { return std::floor(x); });
}
EI_DECLARE_KERNEL(ceil_out) {
  return rounding_unary(values, "aten::ceil.out", [](auto x) { return std::ceil(x); });
}
// Rounds half to even, as torch.round (nearbyint in the default rounding mode).
EI_DECLARE_KERNEL(round_out) {
  return rounding_unary(values, "aten::round.out", [](auto x) { return std::nearbyint(x); });
}
EI_DECLARE_KERNEL(trunc_out) {
  return rounding_unary(values, "aten::trunc.out", [](auto x) { return std::trunc(x); });
}

EI_DECLARE_KERNEL(logical_not_out) {
  return predicate_unary(values, "aten::logical_not.out", []<typename T>(T x) { return x == T(0); });
}

EI_DECLARE_KERNEL(isnan_out) {
  return predicate_unary(values, "aten::isnan.out", []<typename T>(T x) {
    if constexpr (std::is_floating_point_v<T>) return std::isnan(x);
    else return false;
  });
}

EI_DECLARE_KERNEL(isinf_out) {
  return predicate_unary(values, "aten::isinf.out", []<typename T>(T x) {
    if constexpr (std::is_floating_point_v<T>) return std::isinf(x);
    else return false;
  });
}

// Bitwise not of bool is logical not; integral types flip every bit.
EI_DECLARE_KERNEL(bitwise_not_out) {
  Args args("aten::bitwise_not.out", values);
  EI_ASSIGN_OR_RETURN(UnaryArgs u, read_unary(args));
  if (u.a->dtype == ScalarType::kBool) {
    return unary_map<bool, bool>(args, *u.a, *u.out, [](bool x) { return !x; });
  }
  if (!is_integral_type(u.a->dtype, false)) return unsupported_dtype(args.op(), "self", u.a->dtype);
  if (!can_cast(u.a->dtype, u.out->dtype)) return unsupported_dtype(args.op(), "out", u.out->dtype);
  return unary_map<int64_t, int64_t>(args, *u.a, *u.out, [](int64_t x) { return ~x; });
}

}  // namespace ei::kernels
