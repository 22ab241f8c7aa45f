// aten::max_pool2d_with_indices.out(Tensor self, int[2] kernel_size, int[2] stride=[], int[2] padding=0, int[2] dilation=1, bool ceil_mode=False, *, Tensor(a!) out, Tensor(b!) indices) -> (Tensor(a!), Tensor(b!))
// aten::avg_pool2d.out(Tensor self, int[2] kernel_size, int[2] stride=[], int[2] padding=0, bool ceil_mode=False, bool count_include_pad=True, int? divisor_override=None, *, Tensor(a!) out) -> Tensor(a!)
// aten::_adaptive_avg_pool2d.out(Tensor self, SymInt[2] output_size, *, Tensor(a!) out) -> Tensor(a!)
//
// Inputs are (C, H, W) or (N, C, H, W) in the default dim order.
#include <cmath>

#include "kernels/kernel_util.h"
#include "kernels/ops.h"

namespace ei::kernels {
namespace {

constexpr int64_t kParameterLimit = int64_t{1} << 31;

// Reads an int[2] argument that may hold one value for both dims; `fallback` fills an
// empty list (the stride defaults to the kernel size).
Result<std::array<int64_t, 2>> pair_arg(const Args& args, size_t index, std::string_view name, int64_t min_value,
                                        const std::array<int64_t, 2>* fallback = nullptr) {
  EI_ASSIGN_OR_RETURN(std::vector<int64_t> list, args.int_list(index, name));
  if (list.empty() && fallback != nullptr) return *fallback;
  if (list.size() == 1) list.push_back(list[0]);
  if (list.size() != 2) return args.fail(name, "has " + std::to_string(list.size()) + " entries, expected 1 or 2");
  for (int64_t v : list) {
    if (v < min_value || v >= kParameterLimit) {
      return args.fail(name, "has entry " + std::to_string(v) + ", expected at least " + std::to_string(min_value));
    }
  }
  return std::array<int64_t, 2>{list[0], list[1]};
}

// Output length of a pooling window along one dim, as ATen's pooling_output_shape.
int64_t pooled_size(int64_t input, int64_t kernel, int64_t pad, int64_t stride, int64_t dilation, bool ceil_mode) {
  const int64_t span = input + 2 * pad - dilation * (kernel - 1) - 1 + (ceil_mode ? stride - 1 : 0);
  int64_t size = (span >= 0 ? span / stride : -1) + 1;
  // With ceil_mode the last window must start inside the input or the left padding.
  if (ceil_mode && size > 0 && (size - 1) * stride >= input + pad) --size;
  return size;
}

struct PoolInput {
  int64_t planes, height, width;
  bool batched;
};

Result<PoolInput> read_pool_input(const Args& args, const Tensor& self) {
  if (self.dim() != 3 && self.dim() != 4) {
    return args.fail("self", "has rank " + std::to_string(self.dim()) + ", expected 3 (C, H, W) or 4 (N, C, H, W)");
  }
  EI_RETURN_IF_ERROR(require_default_dim_order(args, self, "self"));
  for (int64_t size : self.sizes) {
    if (size >= kParameterLimit) return args.fail("self", "has size " + std::to_string(size) + ", which is too large");
  }
  const int64_t rank = self.dim();
  return PoolInput{shape_numel(std::span(self.sizes).subspan(0, rank - 2)), self.sizes[rank - 2], self.sizes[rank - 1],
                   rank == 4};
}

std::vector<int64_t> pooled_sizes(const Tensor& self, int64_t out_h, int64_t out_w) {
  std::vector<int64_t> sizes = self.sizes;
  sizes[sizes.size() - 2] = out_h;
  sizes[sizes.size() - 1] = out_w;
  return sizes;
}

}  // namespace

EI_DECLARE_KERNEL(max_pool2d_with_indices_out) {
  Args args("aten::max_pool2d_with_indices.out", values);
  EI_RETURN_IF_ERROR(args.check_count(8, 2));
  EI_ASSIGN_OR_RETURN(Tensor * self, args.tensor(0, "self"));
  EI_ASSIGN_OR_RETURN(auto kernel, pair_arg(args, 1, "kernel_size", 1));
  EI_ASSIGN_OR_RETURN(auto stride, pair_arg(args, 2, "stride", 1, &kernel));
  EI_ASSIGN_OR_RETURN(auto padding, pair_arg(args, 3, "padding", 0));
  EI_ASSIGN_OR_RETURN(auto dilation, pair_arg(args, 4, "dilation", 1));
  EI_ASSIGN_OR_RETURN(bool ceil_mode, args.bool_value(5, "ceil_mode"));
  EI_ASSIGN_OR_RETURN(Tensor * out, args.out_tensor(6, "out"));
  EI_ASSIGN_OR_RETURN(Tensor * indices, args.out_tensor(7, "indices"));
  EI_ASSIGN_OR_RETURN(PoolInput in, read_pool_input(args, *self));
  for (int d = 0; d < 2; ++d) {
    if (padding[d] > kernel[d] / 2) return args.fail("padding", "must be at most half the kernel size");
  }
  if (out->dtype != self->dtype) return args.fail("out", "has dtype " + dtype_name(out->dtype) + ", expected self's dtype");
  if (indices->dtype != ScalarType::kLong) return args.fail("indices", "has dtype " + dtype_name(indices->dtype) + ", expected int64");
  const int64_t out_h = pooled_size(in.height, kernel[0], padding[0], stride[0], dilation[0], ceil_mode);
  const int64_t out_w = pooled_size(in.width, kernel[1], padding[1], stride[1], dilation[1], ceil_mode);
  if (out_h <= 0 || out_w <= 0) return args.fail("self", "is smaller than the pooling window");
  const std::vector<int64_t> sizes = pooled_sizes(*self, out_h, out_w);
  EI_RETURN_IF_ERROR(require_default_dim_order(args, *out, "out"));
  EI_RETURN_IF_ERROR(require_default_dim_order(args, *indices, "indices"));
  EI_RETURN_IF_ERROR(resize_output(args, *out, sizes));
  EI_RETURN_IF_ERROR(resize_output(args, *indices, sizes, "indices"));
  return dispatch<DtypeSet::kReal>(self->dtype, args.op(), "self", [&]<typename T>() {
    OverlapGuard guard_out(*self, *out);
    OverlapGuard guard_indices(*self, *indices);
    const T* x = guard_out.data() != self->data ? guard_out.as<T>() : guard_indices.as<T>();
    T* y = out->data_as<T>();
    int64_t* where = indices->data_as<int64_t>();
    for (int64_t p = 0; p < in.planes; ++p) {
      const T* plane = x + p * in.height * in.width;
      for (int64_t oh = 0; oh < out_h; ++oh) {
        for (int64_t ow = 0; ow < out_w; ++ow) {
          T best = std::numeric_limits<T>::lowest();
          int64_t best_index = -1;
          bool found_nan = false;  // NaN wins, as ATen
          for (int64_t kh = 0; kh < kernel[0] && !found_nan; ++kh) {
            const int64_t ih = oh * stride[0] - padding[0] + kh * dilation[0];
            if (ih < 0 || ih >= in.height) continue;
            for (int64_t kw = 0; kw < kernel[1] && !found_nan; ++kw) {
              const int64_t iw = ow * stride[1] - padding[1] + kw * dilation[1];
              if (iw < 0 || iw >= in.width) continue;
              const T v = plane[ih * in.width + iw];
              if constexpr (std::is_floating_point_v<T>) found_nan = std::isnan(v);
              if (best_index < 0 || v > best || found_nan) {
                best = v;
                best_index = ih * in.width + iw;
              }
            }
          }
          const int64_t o = (p * out_h + oh) * out_w + ow;
          y[o] = best;
          where[o] = best_index;
        }
      }
    }
    return Status::Ok();
  });
}

EI_DECLARE_KERNEL(avg_pool2d_out) {
  Args args("aten::avg_pool2d.out", values);
  EI_RETURN_IF_ERROR(args.check_count(8, 1));
  EI_ASSIGN_OR_RETURN(Tensor * self, args.tensor(0, "self"));
  EI_ASSIGN_OR_RETURN(auto kernel, pair_arg(args, 1, "kernel_size", 1));
  EI_ASSIGN_OR_RETURN(auto stride, pair_arg(args, 2, "stride", 1, &kernel));
  EI_ASSIGN_OR_RETURN(auto padding, pair_arg(args, 3, "padding", 0));
  EI_ASSIGN_OR_RETURN(bool ceil_mode, args.bool_value(4, "ceil_mode"));
  EI_ASSIGN_OR_RETURN(bool count_include_pad, args.bool_value(5, "count_include_pad"));
  EI_ASSIGN_OR_RETURN(std::optional<int64_t> divisor_override, args.optional_int(6, "divisor_override"));
  EI_ASSIGN_OR_RETURN(Tensor * out, args.out_tensor(7, "out"));
  EI_ASSIGN_OR_RETURN(PoolInput in, read_pool_input(args, *self));
  for (int d = 0; d < 2; ++d) {
    if (padding[d] > kernel[d] / 2) return args.fail("padding", "must be at most half the kernel size");
  }
  if (divisor_override && *divisor_override == 0) return args.fail("divisor_override", "must be nonzero");
  if (out->dtype != self->dtype) return args.fail("out", "has dtype " + dtype_name(out->dtype) + ", expected self's dtype");
  const int64_t out_h = pooled_size(in.height, kernel[0], padding[0], stride[0], 1, ceil_mode);
  const int64_t out_w = pooled_size(in.width, kernel[1], padding[1], stride[1], 1, ceil_mode);
  if (out_h <= 0 || out_w <= 0) return args.fail("self", "is smaller than the pooling window");
  EI_RETURN_IF_ERROR(require_default_dim_order(args, *out, "out"));
  EI_RETURN_IF_ERROR(resize_output(args, *out, pooled_sizes(*self, out_h, out_w)));
  return dispatch<DtypeSet::kFloating>(self->dtype, args.op(), "self", [&]<typename T>() {
    OverlapGuard guard(*self, *out);
    const T* x = guard.as<T>();
    T* y = out->data_as<T>();
    for (int64_t p = 0; p < in.planes; ++p) {
      const T* plane = x + p * in.height * in.width;
      for (int64_t oh = 0; oh < out_h; ++oh) {
        for (int64_t ow = 0; ow < out_w; ++ow) {
          // The window clipped to the padded input gives the count_include_pad divisor;
          // clipped to the input it gives the summed range.
          int64_t h0 = oh * stride[0] - padding[0];
          int64_t w0 = ow * stride[1] - padding[1];
          int64_t h1 = std::min(h0 + kernel[0], in.height + padding[0]);
          int64_t w1 = std::min(w0 + kernel[1], in.width + padding[1]);
          const int64_t padded_count = (h1 - h0) * (w1 - w0);
          h0 = std::max<int64_t>(h0, 0);
          w0 = std::max<int64_t>(w0, 0);
          h1 = std::min(h1, in.height);
          w1 = std::min(w1, in.width);
          double sum = 0;
          for (int64_t ih = h0; ih < h1; ++ih) {
            for (int64_t iw = w0; iw < w1; ++iw) sum += static_cast<double>(plane[ih * in.width + iw]);
          }
          int64_t divisor = count_include_pad ? padded_count : (h1 - h0) * (w1 - w0);
          if (divisor_override) divisor = *divisor_override;
          y[(p * out_h + oh) * out_w + ow] = static_cast<T>(divisor == 0 ? 0.0 : sum / static_cast<double>(divisor));
        }
      }
    }
    return Status::Ok();
  });
}

// Output cell o covers input rows [floor(o * H / OH), ceil((o + 1) * H / OH)).
EI_DECLARE_KERNEL(adaptive_avg_pool2d_out) {
  Args args("aten::_adaptive_avg_pool2d.out", values);
  EI_RETURN_IF_ERROR(args.check_count(3, 1));
  EI_ASSIGN_OR_RETURN(Tensor * self, args.tensor(0, "self"));
  EI_ASSIGN_OR_RETURN(auto output_size, pair_arg(args, 1, "output_size", 0));
  EI_ASSIGN_OR_RETURN(Tensor * out, args.out_tensor(2, "out"));
  EI_ASSIGN_OR_RETURN(PoolInput in, read_pool_input(args, *self));
  if (out->dtype != self->dtype) return args.fail("out", "has dtype " + dtype_name(out->dtype) + ", expected self's dtype");
  const int64_t out_h = output_size[0];
  const int64_t out_w = output_size[1];
  EI_RETURN_IF_ERROR(require_default_dim_order(args, *out, "out"));
  EI_RETURN_IF_ERROR(resize_output(args, *out, pooled_sizes(*self, out_h, out_w)));
  return dispatch<DtypeSet::kFloating>(self->dtype, args.op(), "self", [&]<typename T>() {
    OverlapGuard guard(*self, *out);
    const T* x = guard.as<T>();
    T* y = out->data_as<T>();
    for (int64_t p = 0; p < in.planes; ++p) {
      const T* plane = x + p * in.height * in.width;
      for (int64_t oh = 0; oh < out_h; ++oh) {
        const int64_t h0 = oh * in.height / out_h;
        const int64_t h1 = ((oh + 1) * in.height + out_h - 1) / out_h;
        for (int64_t ow = 0; ow < out_w; ++ow) {
          const int64_t w0 = ow * in.width / out_w;
          const int64_t w1 = ((ow + 1) * in.width + out_w - 1) / out_w;
          double sum = 0;
          for (int64_t ih = h0; ih < h1; ++ih) {
            for (int64_t iw = w0; iw < w1; ++iw) sum += static_cast<double>(plane[ih * in.width + iw]);
          }
          const int64_t count = (h1 - h0) * (w1 - w0);
          y[(p * out_h + oh) * out_w + ow] = static_cast<T>(count == 0 ? NAN : sum / static_cast<double>(count));
        }
      }
    }
    return Status::Ok();
  });
}

}  // namespace ei::kernels
