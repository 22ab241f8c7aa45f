// The table of portable kernels. Kernels are listed here instead of registering themselves
// from static initializers, because a static library drops object files that nothing
// references.
#include <algorithm>
#include <array>

#include "kernels/ops.h"
#include "runtime/kernel.h"

namespace ei {
namespace {

using namespace kernels;

constexpr KernelInfo kKernels[] = {
    // op_binary.cpp
    {"aten::add", "out", add_out},
    {"aten::add", "Scalar_out", add_scalar_out},
    {"aten::sub", "out", sub_out},
    {"aten::sub", "Scalar_out", sub_scalar_out},
    {"aten::rsub", "Scalar_out", rsub_scalar_out},
    {"aten::mul", "out", mul_out},
    {"aten::mul", "Scalar_out", mul_scalar_out},
    {"aten::div", "out", div_out},
    {"aten::div", "out_mode", div_out_mode},
    {"aten::div", "Scalar_out", div_scalar_out},
    {"aten::div", "Scalar_mode_out", div_scalar_mode_out},
    {"aten::floor_divide", "out", floor_divide_out},
    {"aten::remainder", "Tensor_out", remainder_tensor_out},
    {"aten::remainder", "Scalar_out", remainder_scalar_out},
    {"aten::fmod", "Tensor_out", fmod_tensor_out},
    {"aten::fmod", "Scalar_out", fmod_scalar_out},
    {"aten::minimum", "out", minimum_out},
    {"aten::maximum", "out", maximum_out},
    {"aten::pow", "Tensor_Scalar_out", pow_tensor_scalar_out},
    {"aten::pow", "Tensor_Tensor_out", pow_tensor_tensor_out},
    {"aten::pow", "Scalar_out", pow_scalar_out},
    {"aten::atan2", "out", atan2_out},
    // op_compare.cpp
    {"aten::eq", "Tensor_out", eq_tensor_out},
    {"aten::eq", "Scalar_out", eq_scalar_out},
    {"aten::ne", "Tensor_out", ne_tensor_out},
    {"aten::ne", "Scalar_out", ne_scalar_out},
    {"aten::lt", "Tensor_out", lt_tensor_out},
    {"aten::lt", "Scalar_out", lt_scalar_out},
    {"aten::le", "Tensor_out", le_tensor_out},
    {"aten::le", "Scalar_out", le_scalar_out},
    {"aten::gt", "Tensor_out", gt_tensor_out},
    {"aten::gt", "Scalar_out", gt_scalar_out},
    {"aten::ge", "Tensor_out", ge_tensor_out},
    {"aten::ge", "Scalar_out", ge_scalar_out},
    {"aten::logical_and", "out", logical_and_out},
    {"aten::logical_or", "out", logical_or_out},
    {"aten::logical_xor", "out", logical_xor_out},
    {"aten::bitwise_and", "Tensor_out", bitwise_and_tensor_out},
    {"aten::bitwise_and", "Scalar_out", bitwise_and_scalar_out},
    {"aten::bitwise_or", "Tensor_out", bitwise_or_tensor_out},
    {"aten::bitwise_or", "Scalar_out", bitwise_or_scalar_out},
    {"aten::bitwise_xor", "Tensor_out", bitwise_xor_tensor_out},
    {"aten::bitwise_xor", "Scalar_out", bitwise_xor_scalar_out},
    // op_where.cpp
    {"aten::where", "self_out", where_self_out},
    {"aten::masked_fill", "Scalar_out", masked_fill_scalar_out},
    // op_unary.cpp
    {"aten::exp", "out", exp_out},
    {"aten::expm1", "out", expm1_out},
    {"aten::log", "out", log_out},
    {"aten::log2", "out", log2_out},
    {"aten::log10", "out", log10_out},
    {"aten::log1p", "out", log1p_out},
    {"aten::sqrt", "out", sqrt_out},
    {"aten::rsqrt", "out", rsqrt_out},
    {"aten::reciprocal", "out", reciprocal_out},
    {"aten::sin", "out", sin_out},
    {"aten::cos", "out", cos_out},
    {"aten::tan", "out", tan_out},
    {"aten::asin", "out", asin_out},
    {"aten::acos", "out", acos_out},
    {"aten::atan", "out", atan_out},
    {"aten::sinh", "out", sinh_out},
    {"aten::cosh", "out", cosh_out},
    {"aten::tanh", "out", tanh_out},
    {"aten::asinh", "out", asinh_out},
    {"aten::acosh", "out", acosh_out},
    {"aten::atanh", "out", atanh_out},
    {"aten::erf", "out", erf_out},
    {"aten::sigmoid", "out", sigmoid_out},
    {"aten::neg", "out", neg_out},
    {"aten::abs", "out", abs_out},
    {"aten::floor", "out", floor_out},
    {"aten::ceil", "out", ceil_out},
    {"aten::round", "out", round_out},
    {"aten::trunc", "out", trunc_out},
    {"aten::logical_not", "out", logical_not_out},
    {"aten::bitwise_not", "out", bitwise_not_out},
    {"aten::isnan", "out", isnan_out},
    {"aten::isinf", "out", isinf_out},
    // op_activation.cpp
    {"aten::relu", "out", relu_out},
    {"aten::gelu", "out", gelu_out},
    {"aten::hardtanh", "out", hardtanh_out},
    {"aten::hardswish", "out", hardswish_out},
    {"aten::hardsigmoid", "out", hardsigmoid_out},
    {"aten::leaky_relu", "out", leaky_relu_out},
    {"aten::elu", "out", elu_out},
    {"aten::clamp", "out", clamp_out},
    {"aten::clamp", "Tensor_out", clamp_tensor_out},
    // op_view.cpp
    {"aten::view_copy", "out", view_copy_out},
    {"aten::unsqueeze_copy", "out", unsqueeze_copy_out},
    {"aten::squeeze_copy", "dim_out", squeeze_copy_dim_out},
    {"aten::squeeze_copy", "dims_out", squeeze_copy_dims_out},
    {"aten::expand_copy", "out", expand_copy_out},
    {"aten::permute_copy", "out", permute_copy_out},
    {"aten::transpose_copy", "int_out", transpose_copy_int_out},
    {"aten::t_copy", "out", t_copy_out},
    {"aten::select_copy", "int_out", select_copy_int_out},
    {"aten::slice_copy", "Tensor_out", slice_copy_tensor_out},
    // op_copy.cpp
    {"aten::clone", "out", clone_out},
    {"aten::alias_copy", "out", alias_copy_out},
    {"aten::detach_copy", "out", detach_copy_out},
    {"aten::lift_fresh_copy", "out", lift_fresh_copy_out},
    {"aten::_to_copy", "out", to_copy_out},
    {"dim_order_ops::_to_dim_order_copy", "out", to_dim_order_copy_out},
    {"dim_order_ops::_clone_dim_order", "out", clone_dim_order_out},
    // op_cat.cpp
    {"aten::cat", "out", cat_out},
    {"aten::stack", "out", stack_out},
    {"aten::split_copy", "Tensor_out", split_copy_tensor_out},
    {"aten::split_with_sizes_copy", "out", split_with_sizes_copy_out},
    {"aten::unbind_copy", "int_out", unbind_copy_int_out},
    // op_pad.cpp
    {"aten::constant_pad_nd", "out", constant_pad_nd_out},
    {"aten::repeat", "out", repeat_out},
    // op_fill.cpp
    {"aten::full", "out", full_out},
    {"aten::full_like", "out", full_like_out},
    {"aten::zeros", "out", zeros_out},
    {"aten::ones", "out", ones_out},
    {"aten::scalar_tensor", "out", scalar_tensor_out},
    {"aten::fill", "Scalar_out", fill_scalar_out},
    {"aten::arange", "out", arange_out},
    {"aten::arange", "start_out", arange_start_out},
    // op_norm.cpp
    {"aten::native_layer_norm", "out", native_layer_norm_out},
    {"aten::_native_batch_norm_legit_no_training", "out", native_batch_norm_no_training_out},
    {"aten::native_group_norm", "out", native_group_norm_out},
    // op_softmax.cpp
    {"aten::_softmax", "out", softmax_out},
    {"aten::_log_softmax", "out", log_softmax_out},
    // op_matmul.cpp
    {"aten::mm", "out", mm_out},
    {"aten::bmm", "out", bmm_out},
    {"aten::addmm", "out", addmm_out},
    // op_convolution.cpp
    {"aten::convolution", "out", convolution_out},
    // op_reduce.cpp
    {"aten::mean", "out", mean_out},
    {"aten::mean", "dtype_out", mean_dtype_out},
    {"aten::sum", "IntList_out", sum_int_list_out},
    {"aten::amax", "out", amax_out},
    {"aten::amin", "out", amin_out},
    {"aten::argmax", "out", argmax_out},
    {"aten::argmin", "out", argmin_out},
    {"aten::max", "dim_max", max_dim_max},
    {"aten::min", "dim_min", min_dim_min},
    {"aten::var", "correction_out", var_correction_out},
    {"aten::var", "out", var_out},
    {"aten::linalg_vector_norm", "out", linalg_vector_norm_out},
    {"aten::cumsum", "out", cumsum_out},
    // op_index.cpp
    {"aten::embedding", "out", embedding_out},
    {"aten::index", "Tensor_out", index_tensor_out},
    {"aten::index_select", "out", index_select_out},
    {"aten::gather", "out", gather_out},
    // op_pool.cpp
    {"aten::max_pool2d_with_indices", "out", max_pool2d_with_indices_out},
    {"aten::avg_pool2d", "out", avg_pool2d_out},
    {"aten::_adaptive_avg_pool2d", "out", adaptive_avg_pool2d_out},
    // op_upsample.cpp
    {"aten::upsample_bilinear2d", "vec_out", upsample_bilinear2d_vec_out},
    {"aten::upsample_nearest2d", "vec_out", upsample_nearest2d_vec_out},
};

}  // namespace

const KernelInfo* find_kernel(std::string_view name, std::string_view overload) {
  for (const KernelInfo& info : kKernels) {
    if (info.name == name && info.overload == overload) return &info;
  }
  return nullptr;
}

std::span<const KernelInfo> all_kernels() { return kKernels; }

std::string operator_full_name(std::string_view name, std::string_view overload) {
  std::string full(name);
  if (!overload.empty()) {
    full += '.';
    full += overload;
  }
  return full;
}

}  // namespace ei
