// aten::convolution.out(Tensor input, Tensor weight, Tensor? bias, SymInt[] stride, SymInt[] padding, SymInt[] dilation, bool transposed, SymInt[] output_padding, SymInt groups, *, Tensor(a!) out) -> Tensor(a!)
//
// 1-d (N, C, L) and 2-d (N, C, H, W) convolutions, direct or transposed, with groups. A 1-d
// convolution runs as a 2-d one of height 1. Products accumulate in the tensor's type.
#include "kernels/kernel_util.h"
#include "kernels/ops.h"

namespace ei::kernels {
namespace {

// Bound for stride, padding, dilation and output padding; it keeps size arithmetic in int64.
constexpr int64_t kParameterLimit = int64_t{1} << 31;

struct ConvShape {
  int64_t batch, in_channels, out_channels, groups;
  int64_t in_h, in_w, out_h, out_w, kernel_h, kernel_w;
  int64_t stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w;
};

// Reads a per-spatial-dim list that may hold one value for all dims.
Result<std::vector<int64_t>> spatial_list(const Args& args, size_t index, std::string_view name, size_t spatial,
                                          int64_t min_value) {
  EI_ASSIGN_OR_RETURN(std::vector<int64_t> list, args.int_list(index, name));
  if (list.size() == 1) list.assign(spatial, list[0]);
  if (list.size() != spatial) {
    return args.fail(name, "has " + std::to_string(list.size()) + " entries, expected 1 or " + std::to_string(spatial));
  }
  for (int64_t v : list) {
    if (v < min_value || v >= kParameterLimit) {
      return args.fail(name, "has entry " + std::to_string(v) + ", expected at least " + std::to_string(min_value));
    }
  }
  if (spatial == 1) list.insert(list.begin(), min_value == 0 ? 0 : 1);  // the height-1 dim of a 1-d convolution
  return list;
}

template <typename T>
void convolve(const ConvShape& s, const T* input, const T* weight, const T* bias, T* out) {
  const int64_t in_per_group = s.in_channels / s.groups;
  const int64_t out_per_group = s.out_channels / s.groups;
  const int64_t out_plane = s.out_h * s.out_w;
  const int64_t in_plane = s.in_h * s.in_w;
  for (int64_t n = 0; n < s.batch; ++n) {
    for (int64_t oc = 0; oc < s.out_channels; ++oc) {
      T* y = out + (n * s.out_channels + oc) * out_plane;
      std::fill_n(y, out_plane, bias ? bias[oc] : T(0));
      const int64_t g = oc / out_per_group;
      for (int64_t icg = 0; icg < in_per_group; ++icg) {
        const int64_t ic = g * in_per_group + icg;
        const T* x = input + (n * s.in_channels + ic) * in_plane;
        const T* w = weight + (oc * in_per_group + icg) * s.kernel_h * s.kernel_w;
        for (int64_t kh = 0; kh < s.kernel_h; ++kh) {
          for (int64_t kw = 0; kw < s.kernel_w; ++kw) {
            const T wv = w[kh * s.kernel_w + kw];
            for (int64_t oh = 0; oh < s.out_h; ++oh) {
              const int64_t ih = oh * s.stride_h - s.pad_h + kh * s.dilation_h;
              if (ih < 0 || ih >= s.in_h) continue;
              const T* x_row = x + ih * s.in_w;
              T* y_row = y + oh * s.out_w;
              for (int64_t ow = 0; ow < s.out_w; ++ow) {
                const int64_t iw = ow * s.stride_w - s.pad_w + kw * s.dilation_w;
                if (iw >= 0 && iw < s.in_w) y_row[ow] += wv * x_row[iw];
              }
            }
          }
        }
      }
    }
  }
}

// The transposed convolution scatters each input element through the kernel; weight is
// (in_channels, out_channels / groups, kH, kW).
template <typename T>
void convolve_transposed(const ConvShape& s, const T* input, const T* weight, const T* bias, T* out) {
  const int64_t in_per_group = s.in_channels / s.groups;
  const int64_t out_per_group = s.out_channels / s.groups;
  const int64_t out_plane = s.out_h * s.out_w;
  const int64_t in_plane = s.in_h * s.in_w;
  for (int64_t n = 0; n < s.batch; ++n) {
    for (int64_t oc = 0; oc < s.out_channels; ++oc) {
      std::fill_n(out + (n * s.out_channels + oc) * out_plane, out_plane, bias ? bias[oc] : T(0));
    }
    for (int64_t ic = 0; ic < s.in_channels; ++ic) {
      const int64_t g = ic / in_per_group;
      const T* x = input + (n * s.in_channels + ic) * in_plane;
      for (int64_t ocg = 0; ocg < out_per_group; ++ocg) {
        const int64_t oc = g * out_per_group + ocg;
        T* y = out + (n * s.out_channels + oc) * out_plane;
        const T* w = weight + (ic * out_per_group + ocg) * s.kernel_h * s.kernel_w;
        for (int64_t ih = 0; ih < s.in_h; ++ih) {
          for (int64_t iw = 0; iw < s.in_w; ++iw) {
            const T xv = x[ih * s.in_w + iw];
            for (int64_t kh = 0; kh < s.kernel_h; ++kh) {
              const int64_t oh = ih * s.stride_h - s.pad_h + kh * s.dilation_h;
              if (oh < 0 || oh >= s.out_h) continue;
              for (int64_t kw = 0; kw < s.kernel_w; ++kw) {
                const int64_t ow = iw * s.stride_w - s.pad_w + kw * s.dilation_w;
                if (ow >= 0 && ow < s.out_w) y[oh * s.out_w + ow] += xv * w[kh * s.kernel_w + kw];
              }
            }
          }
        }
      }
    }
  }
}

}  // namespace

EI_DECLARE_KERNEL(convolution_out) {
  Args args("aten::convolution.out", values);
  EI_RETURN_IF_ERROR(args.check_count(10, 1));
  EI_ASSIGN_OR_RETURN(Tensor * input, args.tensor(0, "input"));
  EI_ASSIGN_OR_RETURN(Tensor * weight, args.tensor(1, "weight"));
  EI_ASSIGN_OR_RETURN(Tensor * bias, args.optional_tensor(2, "bias"));
  EI_ASSIGN_OR_RETURN(bool transposed, args.bool_value(6, "transposed"));
  EI_ASSIGN_OR_RETURN(int64_t groups, args.int_value(8, "groups"));
  EI_ASSIGN_OR_RETURN(Tensor * out, args.out_tensor(9, "out"));

  const int64_t rank = input->dim();
  if (rank != 3 && rank != 4) {
    return args.fail("input", "has rank " + std::to_string(rank) + ", expected 3 (N, C, L) or 4 (N, C, H, W)");
  }
  if (weight->dim() != rank) {
    return args.fail("weight", "has rank " + std::to_string(weight->dim()) + ", expected the input's rank " + std::to_string(rank));
  }
  for (const auto& [tensor, name] : {std::pair{input, "input"}, {weight, "weight"}, {out, "out"}}) {
    EI_RETURN_IF_ERROR(require_default_dim_order(args, *tensor, name));
    if (tensor->dtype != input->dtype) {
      return args.fail(name, "has dtype " + dtype_name(tensor->dtype) + ", expected the input's dtype " + dtype_name(input->dtype));
    }
  }
  for (const auto& [tensor, name] : {std::pair{input, "input"}, {weight, "weight"}}) {
    for (int64_t size : tensor->sizes) {
      // Empty tensors may declare huge sizes; the bound keeps the shape arithmetic in int64.
      if (size >= kParameterLimit) return args.fail(name, "has size " + std::to_string(size) + ", which is too large");
    }
  }
  const size_t spatial = static_cast<size_t>(rank - 2);
  EI_ASSIGN_OR_RETURN(std::vector<int64_t> stride, spatial_list(args, 3, "stride", spatial, 1));
  EI_ASSIGN_OR_RETURN(std::vector<int64_t> padding, spatial_list(args, 4, "padding", spatial, 0));
  EI_ASSIGN_OR_RETURN(std::vector<int64_t> dilation, spatial_list(args, 5, "dilation", spatial, 1));
  std::vector<int64_t> output_padding{0, 0};
  if (transposed) {
    EI_ASSIGN_OR_RETURN(output_padding, spatial_list(args, 7, "output_padding", spatial, 0));
    for (size_t d = 0; d < 2; ++d) {
      if (output_padding[d] >= std::max(stride[d], dilation[d])) {
        return args.fail("output_padding", "must be smaller than the stride or the dilation");
      }
    }
  }
  if (groups <= 0 || groups >= kParameterLimit) {
    return args.fail("groups", "is " + std::to_string(groups) + ", expected a positive value");
  }

  ConvShape s{};
  s.batch = input->sizes[0];
  s.in_channels = input->sizes[1];
  s.groups = groups;
  s.in_h = rank == 4 ? input->sizes[2] : 1;
  s.in_w = input->sizes[rank - 1];
  s.kernel_h = rank == 4 ? weight->sizes[2] : 1;
  s.kernel_w = weight->sizes[rank - 1];
  s.stride_h = stride[0];
  s.stride_w = stride[1];
  s.pad_h = padding[0];
  s.pad_w = padding[1];
  s.dilation_h = dilation[0];
  s.dilation_w = dilation[1];
  if (s.in_channels % groups != 0) {
    return args.fail("groups", "is " + std::to_string(groups) + ", which does not divide the " +
                                   std::to_string(s.in_channels) + " input channels");
  }
  if (!transposed) {
    s.out_channels = weight->sizes[0];
    if (weight->sizes[1] * groups != s.in_channels || s.out_channels % groups != 0) {
      return args.fail("weight", "of shape " + shape_to_string(weight->sizes) + " does not fit " +
                                     std::to_string(s.in_channels) + " input channels in " + std::to_string(groups) + " groups");
    }
    s.out_h = (s.in_h + 2 * s.pad_h - s.dilation_h * (s.kernel_h - 1) - 1) / s.stride_h + 1;
    s.out_w = (s.in_w + 2 * s.pad_w - s.dilation_w * (s.kernel_w - 1) - 1) / s.stride_w + 1;
    if (s.in_h + 2 * s.pad_h - s.dilation_h * (s.kernel_h - 1) - 1 < 0 ||
        s.in_w + 2 * s.pad_w - s.dilation_w * (s.kernel_w - 1) - 1 < 0) {
      return args.fail("input", "of shape " + shape_to_string(input->sizes) + " is smaller than the dilated kernel " +
                                    shape_to_string(weight->sizes) + " with its padding");
    }
  } else {
    if (weight->sizes[0] != s.in_channels) {
      return args.fail("weight", "of shape " + shape_to_string(weight->sizes) + " does not start with the " +
                                     std::to_string(s.in_channels) + " input channels");
    }
    s.out_channels = weight->sizes[1] * groups;
    s.out_h = (s.in_h - 1) * s.stride_h - 2 * s.pad_h + s.dilation_h * (s.kernel_h - 1) + output_padding[0] + 1;
    s.out_w = (s.in_w - 1) * s.stride_w - 2 * s.pad_w + s.dilation_w * (s.kernel_w - 1) + output_padding[1] + 1;
    if (s.out_h < 0 || s.out_w < 0) return args.fail("padding", "is larger than the transposed output");
  }
  if (bias != nullptr) {
    if (bias->numel() != s.out_channels) {
      return args.fail("bias", "has " + std::to_string(bias->numel()) + " elements, expected " + std::to_string(s.out_channels));
    }
    if (bias->dtype != input->dtype) {
      return args.fail("bias", "has dtype " + dtype_name(bias->dtype) + ", expected the input's dtype " + dtype_name(input->dtype));
    }
  }
  std::vector<int64_t> out_sizes{s.batch, s.out_channels, s.out_h, s.out_w};
  if (rank == 3) out_sizes.erase(out_sizes.begin() + 2);
  EI_RETURN_IF_ERROR(resize_output(args, *out, out_sizes));

  return dispatch<DtypeSet::kFloating>(input->dtype, args.op(), "input", [&]<typename T>() {
    OverlapGuard x(*input, *out);
    OverlapGuard w(*weight, *out);
    std::unique_ptr<OverlapGuard> b = bias ? std::make_unique<OverlapGuard>(*bias, *out) : nullptr;
    const T* bias_data = b ? b->as<T>() : nullptr;
    if (transposed) {
      convolve_transposed(s, x.as<T>(), w.as<T>(), bias_data, out->data_as<T>());
    } else {
      convolve(s, x.as<T>(), w.as<T>(), bias_data, out->data_as<T>());
    }
    return Status::Ok();
  });
}

}  // namespace ei::kernels
