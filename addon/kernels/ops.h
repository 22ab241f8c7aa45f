// Entry points of the portable kernels, one per operator overload, listed in registry.cpp.
#pragma once

#include <span>

#include "runtime/evalue.h"
#include "runtime/kernel.h"
#include "runtime/status.h"

#define EI_DECLARE_KERNEL(fn) ::ei::Status fn(::ei::KernelContext& context, std::span<::ei::EValue* const> values)

namespace ei::kernels {

// op_binary.cpp
EI_DECLARE_KERNEL(add_out);
EI_DECLARE_KERNEL(add_scalar_out);
EI_DECLARE_KERNEL(sub_out);
EI_DECLARE_KERNEL(sub_scalar_out);
EI_DECLARE_KERNEL(rsub_scalar_out);
EI_DECLARE_KERNEL(mul_out);
EI_DECLARE_KERNEL(mul_scalar_out);
EI_DECLARE_KERNEL(div_out);
EI_DECLARE_KERNEL(div_out_mode);
EI_DECLARE_KERNEL(div_scalar_out);
EI_DECLARE_KERNEL(div_scalar_mode_out);
EI_DECLARE_KERNEL(floor_divide_out);
EI_DECLARE_KERNEL(remainder_tensor_out);
EI_DECLARE_KERNEL(remainder_scalar_out);
EI_DECLARE_KERNEL(fmod_tensor_out);
EI_DECLARE_KERNEL(fmod_scalar_out);
EI_DECLARE_KERNEL(minimum_out);
EI_DECLARE_KERNEL(maximum_out);
EI_DECLARE_KERNEL(pow_tensor_scalar_out);
EI_DECLARE_KERNEL(pow_tensor_tensor_out);
EI_DECLARE_KERNEL(pow_scalar_out);
EI_DECLARE_KERNEL(atan2_out);

// op_compare.cpp
EI_DECLARE_KERNEL(eq_tensor_out);
EI_DECLARE_KERNEL(eq_scalar_out);
EI_DECLARE_KERNEL(ne_tensor_out);
EI_DECLARE_KERNEL(ne_scalar_out);
EI_DECLARE_KERNEL(lt_tensor_out);
EI_DECLARE_KERNEL(lt_scalar_out);
EI_DECLARE_KERNEL(le_tensor_out);
EI_DECLARE_KERNEL(le_scalar_out);
EI_DECLARE_KERNEL(gt_tensor_out);
EI_DECLARE_KERNEL(gt_scalar_out);
EI_DECLARE_KERNEL(ge_tensor_out);
EI_DECLARE_KERNEL(ge_scalar_out);
EI_DECLARE_KERNEL(logical_and_out);
EI_DECLARE_KERNEL(logical_or_out);
EI_DECLARE_KERNEL(logical_xor_out);
EI_DECLARE_KERNEL(bitwise_and_tensor_out);
EI_DECLARE_KERNEL(bitwise_and_scalar_out);
EI_DECLARE_KERNEL(bitwise_or_tensor_out);
EI_DECLARE_KERNEL(bitwise_or_scalar_out);
EI_DECLARE_KERNEL(bitwise_xor_tensor_out);
EI_DECLARE_KERNEL(bitwise_xor_scalar_out);

// op_where.cpp
EI_DECLARE_KERNEL(where_self_out);
EI_DECLARE_KERNEL(masked_fill_scalar_out);

}  // namespace ei::kernels

namespace ei::kernels {

// op_unary.cpp
EI_DECLARE_KERNEL(exp_out);
EI_DECLARE_KERNEL(expm1_out);
EI_DECLARE_KERNEL(log_out);
EI_DECLARE_KERNEL(log2_out);
EI_DECLARE_KERNEL(log10_out);
EI_DECLARE_KERNEL(log1p_out);
EI_DECLARE_KERNEL(sqrt_out);
EI_DECLARE_KERNEL(rsqrt_out);
EI_DECLARE_KERNEL(reciprocal_out);
EI_DECLARE_KERNEL(sin_out);
EI_DECLARE_KERNEL(cos_out);
EI_DECLARE_KERNEL(tan_out);
EI_DECLARE_KERNEL(asin_out);
EI_DECLARE_KERNEL(acos_out);
EI_DECLARE_KERNEL(atan_out);
EI_DECLARE_KERNEL(sinh_out);
EI_DECLARE_KERNEL(cosh_out);
EI_DECLARE_KERNEL(tanh_out);
EI_DECLARE_KERNEL(asinh_out);
EI_DECLARE_KERNEL(acosh_out);
EI_DECLARE_KERNEL(atanh_out);
EI_DECLARE_KERNEL(erf_out);
EI_DECLARE_KERNEL(sigmoid_out);
EI_DECLARE_KERNEL(neg_out);
EI_DECLARE_KERNEL(abs_out);
EI_DECLARE_KERNEL(floor_out);
EI_DECLARE_KERNEL(ceil_out);
EI_DECLARE_KERNEL(round_out);
EI_DECLARE_KERNEL(trunc_out);
EI_DECLARE_KERNEL(logical_not_out);
EI_DECLARE_KERNEL(bitwise_not_out);
EI_DECLARE_KERNEL(isnan_out);
EI_DECLARE_KERNEL(isinf_out);

// op_activation.cpp
EI_DECLARE_KERNEL(relu_out);
EI_DECLARE_KERNEL(gelu_out);
EI_DECLARE_KERNEL(hardtanh_out);
EI_DECLARE_KERNEL(hardswish_out);
EI_DECLARE_KERNEL(hardsigmoid_out);
EI_DECLARE_KERNEL(leaky_relu_out);
EI_DECLARE_KERNEL(elu_out);
EI_DECLARE_KERNEL(clamp_out);
EI_DECLARE_KERNEL(clamp_tensor_out);

}  // namespace ei::kernels

namespace ei::kernels {

// op_view.cpp
EI_DECLARE_KERNEL(view_copy_out);
EI_DECLARE_KERNEL(unsqueeze_copy_out);
EI_DECLARE_KERNEL(squeeze_copy_dim_out);
EI_DECLARE_KERNEL(squeeze_copy_dims_out);
EI_DECLARE_KERNEL(expand_copy_out);
EI_DECLARE_KERNEL(permute_copy_out);
EI_DECLARE_KERNEL(transpose_copy_int_out);
EI_DECLARE_KERNEL(t_copy_out);
EI_DECLARE_KERNEL(select_copy_int_out);
EI_DECLARE_KERNEL(slice_copy_tensor_out);

// op_copy.cpp
EI_DECLARE_KERNEL(clone_out);
EI_DECLARE_KERNEL(alias_copy_out);
EI_DECLARE_KERNEL(detach_copy_out);
EI_DECLARE_KERNEL(lift_fresh_copy_out);
EI_DECLARE_KERNEL(to_copy_out);
EI_DECLARE_KERNEL(to_dim_order_copy_out);
EI_DECLARE_KERNEL(clone_dim_order_out);

}  // namespace ei::kernels

namespace ei::kernels {

// op_cat.cpp
EI_DECLARE_KERNEL(cat_out);
EI_DECLARE_KERNEL(stack_out);
EI_DECLARE_KERNEL(split_copy_tensor_out);
EI_DECLARE_KERNEL(split_with_sizes_copy_out);
EI_DECLARE_KERNEL(unbind_copy_int_out);

// op_pad.cpp
EI_DECLARE_KERNEL(constant_pad_nd_out);
EI_DECLARE_KERNEL(repeat_out);

// op_fill.cpp
EI_DECLARE_KERNEL(full_out);
EI_DECLARE_KERNEL(full_like_out);
EI_DECLARE_KERNEL(zeros_out);
EI_DECLARE_KERNEL(ones_out);
EI_DECLARE_KERNEL(scalar_tensor_out);
EI_DECLARE_KERNEL(fill_scalar_out);
EI_DECLARE_KERNEL(arange_out);
EI_DECLARE_KERNEL(arange_start_out);

}  // namespace ei::kernels

namespace ei::kernels {

// op_norm.cpp
EI_DECLARE_KERNEL(native_layer_norm_out);
EI_DECLARE_KERNEL(native_batch_norm_no_training_out);
EI_DECLARE_KERNEL(native_group_norm_out);

// op_softmax.cpp
EI_DECLARE_KERNEL(softmax_out);
EI_DECLARE_KERNEL(log_softmax_out);

}  // namespace ei::kernels

namespace ei::kernels {

// op_matmul.cpp
EI_DECLARE_KERNEL(mm_out);
EI_DECLARE_KERNEL(bmm_out);
EI_DECLARE_KERNEL(addmm_out);

// op_convolution.cpp
EI_DECLARE_KERNEL(convolution_out);

}  // namespace ei::kernels

namespace ei::kernels {

// op_reduce.cpp
EI_DECLARE_KERNEL(mean_out);
EI_DECLARE_KERNEL(mean_dtype_out);
EI_DECLARE_KERNEL(sum_int_list_out);
EI_DECLARE_KERNEL(amax_out);
EI_DECLARE_KERNEL(amin_out);
EI_DECLARE_KERNEL(argmax_out);
EI_DECLARE_KERNEL(argmin_out);
EI_DECLARE_KERNEL(max_dim_max);
EI_DECLARE_KERNEL(min_dim_min);
EI_DECLARE_KERNEL(var_correction_out);
EI_DECLARE_KERNEL(var_out);
EI_DECLARE_KERNEL(linalg_vector_norm_out);
EI_DECLARE_KERNEL(cumsum_out);

}  // namespace ei::kernels

namespace ei::kernels {

// op_index.cpp
EI_DECLARE_KERNEL(embedding_out);
EI_DECLARE_KERNEL(index_tensor_out);
EI_DECLARE_KERNEL(index_select_out);
EI_DECLARE_KERNEL(gather_out);

}  // namespace ei::kernels

namespace ei::kernels {

// op_pool.cpp
EI_DECLARE_KERNEL(max_pool2d_with_indices_out);
EI_DECLARE_KERNEL(avg_pool2d_out);
EI_DECLARE_KERNEL(adaptive_avg_pool2d_out);

// op_upsample.cpp
EI_DECLARE_KERNEL(upsample_bilinear2d_vec_out);
EI_DECLARE_KERNEL(upsample_nearest2d_vec_out);

}  // namespace ei::kernels
