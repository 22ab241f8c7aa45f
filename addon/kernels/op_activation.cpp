// aten::relu.out(Tensor self, *, Tensor(a!) out) -> Tensor(a!)
// aten::gelu.out(Tensor self, *, str approximate='none', Tensor(a!) out) -> Tensor(a!)
// aten::hardtanh.out(Tensor self, Scalar min_val=-1, Scalar max_val=1, *, Tensor(a!) out) -> Tensor(a!)
// aten::hardswish.out(Tensor self, *, Tensor(a!) out) -> Tensor(a!)
// aten::hardsigmoid.out(Tensor self, *, Tensor(a!) out) -> Tensor(a!)
// aten::leaky_relu.out(Tensor self, Scalar negative_slope=0.01, *, Tensor(a!) out) -> Tensor(a!)
// aten::elu.out(Tensor self, Scalar alpha=1, Scalar scale=1, Scalar input_scale=1, *, Tensor(a!) out) -> Tensor(a!)
// aten::clamp.out(Tensor self, Scalar? min=None, Scalar? max=None, *, Tensor(a!) out) -> Tensor(a!)
// aten::clamp.Tensor_out(Tensor self, Tensor? min=None, Tensor? max=None, *, Tensor(a!) out) -> Tensor(a!)
#include <cmath>

#include "kernels/kernel_util.h"
#include "kernels/ops.h"

namespace ei::kernels {
namespace {

constexpr std::string_view kSelf[] = {"self"};

// Reads self and out (at out_index), checks the layout and that out has self's dtype.
Result<std::pair<Tensor*, Tensor*>> read_same_dtype(const Args& args, size_t out_index) {
  EI_ASSIGN_OR_RETURN(Tensor * a, args.tensor(0, "self"));
  EI_ASSIGN_OR_RETURN(Tensor * out, args.out_tensor(out_index, "out"));
  const Tensor* inputs[] = {a};
  EI_RETURN_IF_ERROR(check_elementwise_layout(args, inputs, kSelf, *out));
  if (out->dtype != a->dtype) {
    return args.fail("out", "has dtype " + dtype_name(out->dtype) + ", expected self's dtype " + dtype_name(a->dtype));
  }
  return std::make_pair(a, out);
}

template <typename T>
T clamp_value(T x, T lo, T hi) {
  // NaN stays NaN: each comparison with NaN is false, so x is kept.
  if (x < lo) x = lo;
  if (x > hi) x = hi;
  return x;
}

}  // namespace

EI_DECLARE_KERNEL(relu_out) {
  Args args("aten::relu.out", values);
  EI_RETURN_IF_ERROR(args.check_count(2, 1));
  EI_ASSIGN_OR_RETURN(auto tensors, read_same_dtype(args, 1));
  Tensor* a = tensors.first;
  Tensor* out = tensors.second;
  return dispatch<DtypeSet::kReal>(a->dtype, args.op(), "self", [&]<typename T>() {
    return unary_map<T, T>(args, *a, *out, [](T x) { return x < T(0) ? T(0) : x; });
  });
}

EI_DECLARE_KERNEL(gelu_out) {
  Args args("aten::gelu.out", values);
  EI_RETURN_IF_ERROR(args.check_count(3, 1));
  EI_ASSIGN_OR_RETURN(auto tensors, read_same_dtype(args, 2));
  Tensor* a = tensors.first;
  Tensor* out = tensors.second;
  EI_ASSIGN_OR_RETURN(std::optional<std::string_view> approximate, args.optional_string(1, "approximate"));
  const std::string_view mode = approximate.value_or("none");
  if (mode != "none" && mode != "tanh") {
    return args.fail("approximate", "is '" + std::string(mode) + "', expected 'none' or 'tanh'");
  }
  const bool use_tanh = mode == "tanh";
  return dispatch<DtypeSet::kFloating>(a->dtype, args.op(), "self", [&]<typename T>() {
    if (use_tanh) {
      // 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))
      const T k_sqrt_2_over_pi = static_cast<T>(0.79788456080286535587989211986876);
      const T k_cubic = static_cast<T>(0.044715);
      return unary_map<T, T>(args, *a, *out, [=](T x) {
        const T inner = k_sqrt_2_over_pi * (x + k_cubic * x * x * x);
        return static_cast<T>(T(0.5) * x * (T(1) + std::tanh(inner)));
      });
    }
    // 0.5 x (1 + erf(x / sqrt(2)))
    const T k_inv_sqrt_2 = static_cast<T>(0.70710678118654752440084436210485);
    return unary_map<T, T>(args, *a, *out, [=](T x) {
      return static_cast<T>(T(0.5) * x * (T(1) + std::erf(x * k_inv_sqrt_2)));
    });
  });
}

EI_DECLARE_KERNEL(hardtanh_out) {
  Args args("aten::hardtanh.out", values);
  EI_RETURN_IF_ERROR(args.check_count(4, 1));
  EI_ASSIGN_OR_RETURN(auto tensors, read_same_dtype(args, 3));
  Tensor* a = tensors.first;
  Tensor* out = tensors.second;
  EI_ASSIGN_OR_RETURN(Scalar min_val, args.scalar(1, "min_val"));
  EI_ASSIGN_OR_RETURN(Scalar max_val, args.scalar(2, "max_val"));
  return dispatch<DtypeSet::kReal>(a->dtype, args.op(), "self", [&]<typename T>() {
    const T lo = min_val.to<T>();
    const T hi = max_val.to<T>();
    return unary_map<T, T>(args, *a, *out, [=](T x) { return clamp_value(x, lo, hi); });
  });
}

EI_DECLARE_KERNEL(hardswish_out) {
  Args args("aten::hardswish.out", values);
  EI_RETURN_IF_ERROR(args.check_count(2, 1));
  EI_ASSIGN_OR_RETURN(auto tensors, read_same_dtype(args, 1));
  Tensor* a = tensors.first;
  Tensor* out = tensors.second;
  return dispatch<DtypeSet::kFloating>(a->dtype, args.op(), "self", [&]<typename T>() {
    // x * relu6(x + 3) / 6
    return unary_map<T, T>(args, *a, *out, [](T x) { return x * clamp_value(x + T(3), T(0), T(6)) / T(6); });
  });
}

EI_DECLARE_KERNEL(hardsigmoid_out) {
  Args args("aten::hardsigmoid.out", values);
  EI_RETURN_IF_ERROR(args.check_count(2, 1));
  EI_ASSIGN_OR_RETURN(auto tensors, read_same_dtype(args, 1));
  Tensor* a = tensors.first;
  Tensor* out = tensors.second;
  return dispatch<DtypeSet::kFloating>(a->dtype, args.op(), "self", [&]<typename T>() {
    // relu6(x + 3) / 6
    return unary_map<T, T>(args, *a, *out, [](T x) { return clamp_value(x + T(3), T(0), T(6)) / T(6); });
  });
}

EI_DECLARE_KERNEL(leaky_relu_out) {
  Args args("aten::leaky_relu.out", values);
  EI_RETURN_IF_ERROR(args.check_count(3, 1));
  EI_ASSIGN_OR_RETURN(auto tensors, read_same_dtype(args, 2));
  Tensor* a = tensors.first;
  Tensor* out = tensors.second;
  EI_ASSIGN_OR_RETURN(Scalar slope_value, args.scalar(1, "negative_slope"));
  return dispatch<DtypeSet::kFloating>(a->dtype, args.op(), "self", [&]<typename T>() {
    const T slope = slope_value.to<T>();
    return unary_map<T, T>(args, *a, *out, [=](T x) { return x > T(0) ? x : x * slope; });
  });
}

EI_DECLARE_KERNEL(elu_out) {
  Args args("aten::elu.out", values);
  EI_RETURN_IF_ERROR(args.check_count(5, 1));
  EI_ASSIGN_OR_RETURN(auto tensors, read_same_dtype(args, 4));
  Tensor* a = tensors.first;
  Tensor* out = tensors.second;
  EI_ASSIGN_OR_RETURN(Scalar alpha_value, args.scalar(1, "alpha"));
  EI_ASSIGN_OR_RETURN(Scalar scale_value, args.scalar(2, "scale"));
  EI_ASSIGN_OR_RETURN(Scalar input_scale_value, args.scalar(3, "input_scale"));
  return dispatch<DtypeSet::kFloating>(a->dtype, args.op(), "self", [&]<typename T>() {
    const T alpha = alpha_value.to<T>();
    const T scale = scale_value.to<T>();
    const T input_scale = input_scale_value.to<T>();
    return unary_map<T, T>(args, *a, *out, [=](T x) {
      return x > T(0) ? scale * x : scale * alpha * std::expm1(x * input_scale);
    });
  });
}

EI_DECLARE_KERNEL(clamp_out) {
  Args args("aten::clamp.out", values);
  EI_RETURN_IF_ERROR(args.check_count(4, 1));
  EI_ASSIGN_OR_RETURN(Tensor * a, args.tensor(0, "self"));
  EI_ASSIGN_OR_RETURN(std::optional<Scalar> min_value, args.optional_scalar(1, "min"));
  EI_ASSIGN_OR_RETURN(std::optional<Scalar> max_value, args.optional_scalar(2, "max"));
  EI_ASSIGN_OR_RETURN(Tensor * out, args.out_tensor(3, "out"));
  if (!min_value && !max_value) return args.fail("min", "and 'max' are both None; at least one must be set");
  const Tensor* inputs[] = {a};
  EI_RETURN_IF_ERROR(check_elementwise_layout(args, inputs, kSelf, *out));
  ScalarType common = a->dtype;
  if (min_value) common = promote_type_with_scalar(common, *min_value);
  if (max_value) common = promote_type_with_scalar(common, *max_value);
  if (!can_cast(common, out->dtype)) {
    return args.fail("out", "has dtype " + dtype_name(out->dtype) + " but the result has dtype " + dtype_name(common));
  }
  if (common == ScalarType::kBool) return unsupported_dtype(args.op(), "self", common);
  return dispatch_compute(common, args.op(), [&]<typename T>() {
    const T lo = min_value ? min_value->to<T>() : std::numeric_limits<T>::lowest();
    const T hi = max_value ? max_value->to<T>() : std::numeric_limits<T>::max();
    const bool has_min = min_value.has_value();
    const bool has_max = max_value.has_value();
    // ATen applies min first, then max, so max wins when min > max.
    return unary_map<T, T>(args, *a, *out, [=](T x) {
      if (has_min && x < lo) x = lo;
      if (has_max && x > hi) x = hi;
      return x;
    });
  });
}

EI_DECLARE_KERNEL(clamp_tensor_out) {
  Args args("aten::clamp.Tensor_out", values);
  EI_RETURN_IF_ERROR(args.check_count(4, 1));
  EI_ASSIGN_OR_RETURN(Tensor * a, args.tensor(0, "self"));
  EI_ASSIGN_OR_RETURN(Tensor * min_tensor, args.optional_tensor(1, "min"));
  EI_ASSIGN_OR_RETURN(Tensor * max_tensor, args.optional_tensor(2, "max"));
  EI_ASSIGN_OR_RETURN(Tensor * out, args.out_tensor(3, "out"));
  if (min_tensor == nullptr && max_tensor == nullptr) {
    return args.fail("min", "and 'max' are both None; at least one must be set");
  }
  // A missing bound is replaced by self, which never changes the result.
  const Tensor& lo_tensor = min_tensor ? *min_tensor : *a;
  const Tensor& hi_tensor = max_tensor ? *max_tensor : *a;
  const Tensor* inputs[] = {a, &lo_tensor, &hi_tensor};
  constexpr std::string_view kNames[] = {"self", "min", "max"};
  EI_RETURN_IF_ERROR(check_elementwise_layout(args, inputs, kNames, *out));
  const ScalarType common = promote_types(promote_types(a->dtype, lo_tensor.dtype), hi_tensor.dtype);
  if (!can_cast(common, out->dtype)) {
    return args.fail("out", "has dtype " + dtype_name(out->dtype) + " but the result has dtype " + dtype_name(common));
  }
  if (common == ScalarType::kBool) return unsupported_dtype(args.op(), "self", common);
  EI_ASSIGN_OR_RETURN(std::vector<int64_t> partial, broadcast_shapes(args, a->sizes, lo_tensor.sizes));
  EI_ASSIGN_OR_RETURN(std::vector<int64_t> shape, broadcast_shapes(args, partial, hi_tensor.sizes));
  EI_RETURN_IF_ERROR(resize_output(args, *out, shape));
  const bool has_min = min_tensor != nullptr;
  const bool has_max = max_tensor != nullptr;
  return dispatch_compute(common, args.op(), [&]<typename T>() {
    InputView<T> x(*a, out);
    InputView<T> lo(lo_tensor, out);
    InputView<T> hi(hi_tensor, out);
    OutputView<T> result(*out);
    broadcast_for_each<3>(out->sizes,
                          {std::span<const int64_t>(a->sizes), std::span<const int64_t>(lo_tensor.sizes),
                           std::span<const int64_t>(hi_tensor.sizes)},
                          [&](int64_t i, const std::array<int64_t, 3>& idx) {
                            T v = x[idx[0]];
                            if (has_min && (v < lo[idx[1]] || std::isnan(static_cast<double>(lo[idx[1]])))) v = lo[idx[1]];
                            if (has_max && (v > hi[idx[2]] || std::isnan(static_cast<double>(hi[idx[2]])))) v = hi[idx[2]];
                            result[i] = v;
                          });
    result.commit();
    return Status::Ok();
  });
}

}  // namespace ei::kernels
