// aten::native_layer_norm.out(Tensor input, SymInt[] normalized_shape, Tensor? weight, Tensor? bias, float eps, *, Tensor(a!) out0, Tensor(b!) out1, Tensor(c!) out2) -> (Tensor(a!), Tensor(b!), Tensor(c!))
// aten::_native_batch_norm_legit_no_training.out(Tensor input, Tensor? weight, Tensor? bias, Tensor running_mean, Tensor running_var, float momentum, float eps, *, Tensor(a!) out0, Tensor(b!) out1, Tensor(c!) out2) -> (Tensor(a!), Tensor(b!), Tensor(c!))
// aten::native_group_norm.out(Tensor input, Tensor? weight, Tensor? bias, SymInt N, SymInt C, SymInt HxW, int group, float eps, *, Tensor(a!) out0, Tensor(b!) out1, Tensor(c!) out2) -> (Tensor(a!), Tensor(b!), Tensor(c!))
//
// Means and variances accumulate in double; the variance is the biased (population) one,
// and rstd = 1 / sqrt(var + eps), as ATen.
#include <algorithm>
#include <cmath>

#include "kernels/kernel_util.h"
#include "runtime/thread_pool.h"
#include "kernels/ops.h"

namespace ei::kernels {
namespace {

Status check_same_dtype(const Args& args, const Tensor& tensor, std::string_view name, ScalarType expected) {
  if (tensor.dtype == expected) return Status::Ok();
  return args.fail(name, "has dtype " + dtype_name(tensor.dtype) + ", expected the input's dtype " + dtype_name(expected));
}

// Checks an optional per-feature parameter (weight or bias) of `count` elements.
Status check_parameter(const Args& args, const Tensor* tensor, std::string_view name, int64_t count) {
  if (tensor == nullptr) return Status::Ok();
  if (tensor->numel() != count) {
    return args.fail(name, "has " + std::to_string(tensor->numel()) + " elements, expected " + std::to_string(count));
  }
  return Status::Ok();
}

// Sums contiguous values in 8 interleaved double accumulators, added pairwise at the end: a
// fixed order (so results are the same on every run), and one that compilers vectorize, unlike
// a single running sum. Layer norm calls it for every row of every encoder layer.
template <typename T>
std::pair<double, double> contiguous_moments(const T* data, int64_t n) {
  constexpr int kLanes = 8;
  double lanes[kLanes] = {};
  int64_t body = n / kLanes * kLanes;
  for (int64_t i = 0; i < body; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) lanes[j] += static_cast<double>(data[i + j]);
  }
  double sum = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
  for (int64_t i = body; i < n; ++i) sum += static_cast<double>(data[i]);
  const double mean = sum / static_cast<double>(n);

  double squares_lanes[kLanes] = {};
  for (int64_t i = 0; i < body; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) {
      const double centered = static_cast<double>(data[i + j]) - mean;
      squares_lanes[j] += centered * centered;
    }
  }
  double squares = ((squares_lanes[0] + squares_lanes[1]) + (squares_lanes[2] + squares_lanes[3])) +
                   ((squares_lanes[4] + squares_lanes[5]) + (squares_lanes[6] + squares_lanes[7]));
  for (int64_t i = body; i < n; ++i) {
    const double centered = static_cast<double>(data[i]) - mean;
    squares += centered * centered;
  }
  return {mean, squares / static_cast<double>(n)};
}

// Mean and biased variance of n values at data[0], data[stride], ...
template <typename T>
std::pair<double, double> moments(const T* data, int64_t n, int64_t stride = 1) {
  if (stride == 1) return contiguous_moments(data, n);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(data[i * stride]);
  const double mean = sum / static_cast<double>(n);
  double squares = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double centered = static_cast<double>(data[i * stride]) - mean;
    squares += centered * centered;
  }
  return {mean, squares / static_cast<double>(n)};
}

// Writes out[i] = (in[i] - mean) * rstd * weight[i] + bias[i] in double, where weight and bias
// may be null. One loop per case lets compilers vectorize it; out may be the same as in.
template <typename T>
void normalize_row(const T* in, T* out, int64_t n, double mean, double rstd, const T* weight, const T* bias) {
  auto normalized = [&](int64_t i) { return (static_cast<double>(in[i]) - mean) * rstd; };
  if (weight != nullptr && bias != nullptr) {
    for (int64_t i = 0; i < n; ++i) {
      out[i] = static_cast<T>(normalized(i) * static_cast<double>(weight[i]) + static_cast<double>(bias[i]));
    }
  } else if (weight != nullptr) {
    for (int64_t i = 0; i < n; ++i) out[i] = static_cast<T>(normalized(i) * static_cast<double>(weight[i]));
  } else if (bias != nullptr) {
    for (int64_t i = 0; i < n; ++i) out[i] = static_cast<T>(normalized(i) + static_cast<double>(bias[i]));
  } else {
    for (int64_t i = 0; i < n; ++i) out[i] = static_cast<T>(normalized(i));
  }
}

}  // namespace

EI_DECLARE_KERNEL(native_layer_norm_out) {
  Args args("aten::native_layer_norm.out", values);
  EI_RETURN_IF_ERROR(args.check_count(8, 3));
  EI_ASSIGN_OR_RETURN(Tensor * input, args.tensor(0, "input"));
  EI_ASSIGN_OR_RETURN(std::vector<int64_t> normalized_shape, args.int_list(1, "normalized_shape"));
  EI_ASSIGN_OR_RETURN(Tensor * weight, args.optional_tensor(2, "weight"));
  EI_ASSIGN_OR_RETURN(Tensor * bias, args.optional_tensor(3, "bias"));
  EI_ASSIGN_OR_RETURN(double eps, args.double_value(4, "eps"));
  EI_ASSIGN_OR_RETURN(Tensor * out, args.out_tensor(5, "out0"));
  EI_ASSIGN_OR_RETURN(Tensor * mean_out, args.out_tensor(6, "out1"));
  EI_ASSIGN_OR_RETURN(Tensor * rstd_out, args.out_tensor(7, "out2"));

  const int64_t rank = input->dim();
  const int64_t norm_rank = static_cast<int64_t>(normalized_shape.size());
  if (norm_rank == 0 || norm_rank > rank) {
    return args.fail("normalized_shape", "has " + std::to_string(norm_rank) + " dims, expected 1 to the input's rank " +
                                             std::to_string(rank));
  }
  const int64_t axis = rank - norm_rank;
  for (int64_t d = 0; d < norm_rank; ++d) {
    if (normalized_shape[d] != input->sizes[axis + d]) {
      return args.fail("normalized_shape", shape_to_string(normalized_shape) + " does not match the trailing dims of input " +
                                               shape_to_string(input->sizes));
    }
  }
  for (const auto& [tensor, name] : {std::pair{input, "input"}, {out, "out0"}, {mean_out, "out1"}, {rstd_out, "out2"}}) {
    EI_RETURN_IF_ERROR(require_default_dim_order(args, *tensor, name));
  }
  const int64_t inner = shape_numel(std::span(input->sizes).subspan(axis));
  const int64_t outer = shape_numel(std::span(input->sizes).subspan(0, axis));
  EI_RETURN_IF_ERROR(check_parameter(args, weight, "weight", inner));
  EI_RETURN_IF_ERROR(check_parameter(args, bias, "bias", inner));
  for (const auto& [tensor, name] : {std::pair{out, "out0"}, {mean_out, "out1"}, {rstd_out, "out2"}}) {
    EI_RETURN_IF_ERROR(check_same_dtype(args, *tensor, name, input->dtype));
  }

  // mean and rstd keep the leading dims and have size 1 in the normalized dims.
  std::vector<int64_t> stat_sizes = input->sizes;
  for (int64_t d = axis; d < rank; ++d) stat_sizes[d] = 1;
  const std::vector<int64_t> in_sizes = input->sizes;
  EI_RETURN_IF_ERROR(resize_output(args, *out, in_sizes, "out0"));
  EI_RETURN_IF_ERROR(resize_output(args, *mean_out, stat_sizes, "out1"));
  EI_RETURN_IF_ERROR(resize_output(args, *rstd_out, stat_sizes, "out2"));
  if (inner == 0) return Status::Ok();

  return dispatch<DtypeSet::kFloating>(input->dtype, args.op(), "input", [&]<typename T>() {
    InputView<T> x(*input, out);
    InputView<T> w(weight ? *weight : *input);
    InputView<T> b(bias ? *bias : *input);
    // The statistics are written after each row is read, so copy input if they overlap it.
    OverlapGuard mean_guard(*input, *mean_out);
    OverlapGuard rstd_guard(*input, *rstd_out);
    const T* source = x.data();
    std::unique_ptr<T[]> copy;
    if (mean_guard.data() != input->data || rstd_guard.data() != input->data) {
      copy = std::make_unique<T[]>(static_cast<size_t>(input->numel()));
      std::copy_n(x.data(), input->numel(), copy.get());
      source = copy.get();
    }
    T* y = out->data_as<T>();
    T* means = mean_out->data_as<T>();
    T* rstds = rstd_out->data_as<T>();
    // Rows are independent (each reads its own input row before writing it), so they are
    // spread over the program's threads.
    parallel_for(context.pool, static_cast<size_t>(outer), std::max<size_t>(1, 8192 / static_cast<size_t>(inner)),
                 [&](size_t first, size_t last) {
                   for (int64_t row = static_cast<int64_t>(first); row < static_cast<int64_t>(last); ++row) {
                     const T* in_row = source + row * inner;
                     const auto [mean, variance] = moments(in_row, inner);
                     const double rstd = 1.0 / std::sqrt(variance + eps);
                     normalize_row(in_row, y + row * inner, inner, mean, rstd, weight ? w.data() : nullptr,
                                   bias ? b.data() : nullptr);
                     means[row] = static_cast<T>(mean);
                     rstds[row] = static_cast<T>(rstd);
                   }
                 });
    return Status::Ok();
  });
}

EI_DECLARE_KERNEL(native_batch_norm_no_training_out) {
  Args args("aten::_native_batch_norm_legit_no_training.out", values);
  EI_RETURN_IF_ERROR(args.check_count(10, 3));
  EI_ASSIGN_OR_RETURN(Tensor * input, args.tensor(0, "input"));
  EI_ASSIGN_OR_RETURN(Tensor * weight, args.optional_tensor(1, "weight"));
  EI_ASSIGN_OR_RETURN(Tensor * bias, args.optional_tensor(2, "bias"));
  EI_ASSIGN_OR_RETURN(Tensor * running_mean, args.tensor(3, "running_mean"));
  EI_ASSIGN_OR_RETURN(Tensor * running_var, args.tensor(4, "running_var"));
  EI_ASSIGN_OR_RETURN(double momentum, args.double_value(5, "momentum"));
  EI_ASSIGN_OR_RETURN(double eps, args.double_value(6, "eps"));
  EI_ASSIGN_OR_RETURN(Tensor * out, args.out_tensor(7, "out0"));
  EI_ASSIGN_OR_RETURN(Tensor * mean_out, args.out_tensor(8, "out1"));
  EI_ASSIGN_OR_RETURN(Tensor * invstd_out, args.out_tensor(9, "out2"));
  (void)momentum;  // only used when training

  if (input->dim() < 2) return args.fail("input", "has rank " + std::to_string(input->dim()) + ", expected at least 2");
  EI_RETURN_IF_ERROR(check_same_dtype(args, *out, "out0", input->dtype));
  EI_RETURN_IF_ERROR(require_default_dim_order(args, *input, "input"));
  EI_RETURN_IF_ERROR(require_default_dim_order(args, *out, "out0"));
  const int64_t channels = input->sizes[1];
  EI_RETURN_IF_ERROR(check_parameter(args, weight, "weight", channels));
  EI_RETURN_IF_ERROR(check_parameter(args, bias, "bias", channels));
  EI_RETURN_IF_ERROR(check_parameter(args, running_mean, "running_mean", channels));
  EI_RETURN_IF_ERROR(check_parameter(args, running_var, "running_var", channels));
  const std::vector<int64_t> in_sizes = input->sizes;
  EI_RETURN_IF_ERROR(resize_output(args, *out, in_sizes, "out0"));
  // The saved statistics are empty without training, as ATen.
  const std::vector<int64_t> empty{0};
  if (mean_out->dim() == 1) EI_RETURN_IF_ERROR(resize_output(args, *mean_out, empty, "out1"));
  if (invstd_out->dim() == 1) EI_RETURN_IF_ERROR(resize_output(args, *invstd_out, empty, "out2"));

  const int64_t batch = input->sizes[0];
  const int64_t plane = shape_numel(std::span(input->sizes).subspan(2));
  return dispatch<DtypeSet::kFloating>(input->dtype, args.op(), "input", [&]<typename T>() {
    InputView<T> x(*input, out);
    InputView<double> mean(*running_mean);
    InputView<double> var(*running_var);
    std::unique_ptr<double[]> scale = std::make_unique<double[]>(static_cast<size_t>(channels));
    std::unique_ptr<double[]> shift = std::make_unique<double[]>(static_cast<size_t>(channels));
    {
      InputView<double> w(weight ? *weight : *running_mean);
      InputView<double> b(bias ? *bias : *running_mean);
      for (int64_t c = 0; c < channels; ++c) {
        const double invstd = 1.0 / std::sqrt(var[c] + eps);
        scale[c] = invstd * (weight ? w[c] : 1.0);
        shift[c] = (bias ? b[c] : 0.0) - mean[c] * scale[c];
      }
    }
    T* y = out->data_as<T>();
    for (int64_t n = 0; n < batch; ++n) {
      for (int64_t c = 0; c < channels; ++c) {
        const int64_t base = (n * channels + c) * plane;
        for (int64_t i = 0; i < plane; ++i) {
          y[base + i] = static_cast<T>(static_cast<double>(x[base + i]) * scale[c] + shift[c]);
        }
      }
    }
    return Status::Ok();
  });
}

EI_DECLARE_KERNEL(native_group_norm_out) {
  Args args("aten::native_group_norm.out", values);
  EI_RETURN_IF_ERROR(args.check_count(11, 3));
  EI_ASSIGN_OR_RETURN(Tensor * input, args.tensor(0, "input"));
  EI_ASSIGN_OR_RETURN(Tensor * weight, args.optional_tensor(1, "weight"));
  EI_ASSIGN_OR_RETURN(Tensor * bias, args.optional_tensor(2, "bias"));
  EI_ASSIGN_OR_RETURN(int64_t batch, args.int_value(3, "N"));
  EI_ASSIGN_OR_RETURN(int64_t channels, args.int_value(4, "C"));
  EI_ASSIGN_OR_RETURN(int64_t plane, args.int_value(5, "HxW"));
  EI_ASSIGN_OR_RETURN(int64_t groups, args.int_value(6, "group"));
  EI_ASSIGN_OR_RETURN(double eps, args.double_value(7, "eps"));
  EI_ASSIGN_OR_RETURN(Tensor * out, args.out_tensor(8, "out0"));
  EI_ASSIGN_OR_RETURN(Tensor * mean_out, args.out_tensor(9, "out1"));
  EI_ASSIGN_OR_RETURN(Tensor * rstd_out, args.out_tensor(10, "out2"));

  if (input->dim() < 2 || input->sizes[0] != batch || input->sizes[1] != channels || batch < 0 || channels < 0 ||
      plane < 0 || checked_numel(std::vector<int64_t>{batch, channels, plane}) != input->numel()) {
    return args.fail("input", "of shape " + shape_to_string(input->sizes) + " does not match N=" + std::to_string(batch) +
                                  ", C=" + std::to_string(channels) + ", HxW=" + std::to_string(plane));
  }
  if (groups <= 0 || channels % groups != 0) {
    return args.fail("group", "is " + std::to_string(groups) + ", expected a positive divisor of C=" + std::to_string(channels));
  }
  for (const auto& [tensor, name] : {std::pair{input, "input"}, {out, "out0"}, {mean_out, "out1"}, {rstd_out, "out2"}}) {
    EI_RETURN_IF_ERROR(require_default_dim_order(args, *tensor, name));
  }
  for (const auto& [tensor, name] : {std::pair{out, "out0"}, {mean_out, "out1"}, {rstd_out, "out2"}}) {
    EI_RETURN_IF_ERROR(check_same_dtype(args, *tensor, name, input->dtype));
  }
  EI_RETURN_IF_ERROR(check_parameter(args, weight, "weight", channels));
  EI_RETURN_IF_ERROR(check_parameter(args, bias, "bias", channels));
  const std::vector<int64_t> in_sizes = input->sizes;
  const std::vector<int64_t> stat_sizes{batch, groups};
  EI_RETURN_IF_ERROR(resize_output(args, *out, in_sizes, "out0"));
  EI_RETURN_IF_ERROR(resize_output(args, *mean_out, stat_sizes, "out1"));
  EI_RETURN_IF_ERROR(resize_output(args, *rstd_out, stat_sizes, "out2"));

  const int64_t channels_per_group = channels / groups;
  const int64_t group_size = channels_per_group * plane;
  return dispatch<DtypeSet::kFloating>(input->dtype, args.op(), "input", [&]<typename T>() {
    OverlapGuard guard_out(*input, *out);
    OverlapGuard guard_mean(*input, *mean_out);
    OverlapGuard guard_rstd(*input, *rstd_out);
    // Any overlap means the input must be read from a copy; guard_out covers it when only
    // out overlaps, and the statistics guards when those do.
    const T* x = guard_out.as<T>();
    if (x == input->data) x = guard_mean.as<T>();
    if (x == input->data) x = guard_rstd.as<T>();
    InputView<double> w(weight ? *weight : *input);
    InputView<double> b(bias ? *bias : *input);
    T* y = out->data_as<T>();
    for (int64_t n = 0; n < batch; ++n) {
      for (int64_t g = 0; g < groups; ++g) {
        const int64_t base = (n * groups + g) * group_size;
        double mean = 0;
        double variance = 0;
        if (group_size > 0) std::tie(mean, variance) = moments(x + base, group_size);
        const double rstd = 1.0 / std::sqrt(variance + eps);
        for (int64_t c = 0; c < channels_per_group; ++c) {
          const int64_t channel = g * channels_per_group + c;
          const double scale = rstd * (weight ? w[channel] : 1.0);
          const double shift = (bias ? b[channel] : 0.0) - mean * scale;
          const int64_t offset = base + c * plane;
          for (int64_t i = 0; i < plane; ++i) y[offset + i] = static_cast<T>(static_cast<double>(x[offset + i]) * scale + shift);
        }
        mean_out->data_as<T>()[n * groups + g] = static_cast<T>(mean);
        rstd_out->data_as<T>()[n * groups + g] = static_cast<T>(rstd);
      }
    }
    return Status::Ok();
  });
}

}  // namespace ei::kernels
