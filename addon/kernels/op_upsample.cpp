// aten::upsample_bilinear2d.vec_out(Tensor input, SymInt[]? output_size, bool align_corners, float[]? scale_factors, *, Tensor(a!) out) -> Tensor(a!)
// aten::upsample_nearest2d.vec_out(Tensor input, SymInt[]? output_size, float[]? scale_factors, *, Tensor(a!) out) -> Tensor(a!)
//
// Source coordinates follow ATen's area_pixel_compute_scale and
// area_pixel_compute_source_index, computed in the tensor's type.
#include <cmath>

#include "kernels/kernel_util.h"
#include "kernels/ops.h"

namespace ei::kernels {
namespace {

constexpr int64_t kSizeLimit = int64_t{1} << 31;

struct Resize {
  int64_t planes, in_h, in_w, out_h, out_w;
  std::optional<double> scale_h, scale_w;  // the given scale factors, if any
};

// Reads the input and exactly one of output_size and scale_factors, and resizes out.
Result<Resize> plan_resize(const Args& args, const Tensor& input, size_t size_index, size_t scale_index, Tensor& out) {
  if (input.dim() != 4) return args.fail("input", "has rank " + std::to_string(input.dim()) + ", expected 4 (N, C, H, W)");
  EI_RETURN_IF_ERROR(require_default_dim_order(args, input, "input"));
  EI_RETURN_IF_ERROR(require_default_dim_order(args, out, "out"));
  if (out.dtype != input.dtype) return args.fail("out", "has dtype " + dtype_name(out.dtype) + ", expected the input's dtype");
  EI_ASSIGN_OR_RETURN(std::optional<std::vector<int64_t>> output_size, args.optional_int_list(size_index, "output_size"));
  EI_ASSIGN_OR_RETURN(std::optional<std::vector<double>> scale_arg, args.optional_double_list(scale_index, "scale_factors"));
  const bool has_scales = scale_arg.has_value();
  const std::vector<double> scales = scale_arg.value_or(std::vector<double>{});
  Resize r{};
  r.planes = input.sizes[0] * input.sizes[1];
  r.in_h = input.sizes[2];
  r.in_w = input.sizes[3];
  if (output_size.has_value() == has_scales) {
    return args.fail("output_size", "and 'scale_factors' must be given exactly one at a time");
  }
  if (output_size) {
    if (output_size->size() != 2) return args.fail("output_size", "has " + std::to_string(output_size->size()) + " entries, expected 2");
    r.out_h = (*output_size)[0];
    r.out_w = (*output_size)[1];
  } else {
    if (scales.size() != 2) return args.fail("scale_factors", "has " + std::to_string(scales.size()) + " entries, expected 2");
    for (double s : scales) {
      if (!(s > 0) || !std::isfinite(s)) return args.fail("scale_factors", "must be positive and finite");
    }
    r.scale_h = scales[0];
    r.scale_w = scales[1];
    const double h = std::floor(static_cast<double>(r.in_h) * *r.scale_h);
    const double w = std::floor(static_cast<double>(r.in_w) * *r.scale_w);
    if (h >= static_cast<double>(kSizeLimit) || w >= static_cast<double>(kSizeLimit)) {
      return args.fail("scale_factors", "give an output that is too large");
    }
    r.out_h = static_cast<int64_t>(h);
    r.out_w = static_cast<int64_t>(w);
  }
  if (r.out_h <= 0 || r.out_w <= 0 || r.out_h >= kSizeLimit || r.out_w >= kSizeLimit) {
    return args.fail("output_size", "gives an invalid output size " + std::to_string(r.out_h) + " x " + std::to_string(r.out_w));
  }
  if (r.in_h >= kSizeLimit || r.in_w >= kSizeLimit) return args.fail("input", "has sizes that are too large");
  EI_RETURN_IF_ERROR(resize_output(args, out, std::vector<int64_t>{input.sizes[0], input.sizes[1], r.out_h, r.out_w}));
  return r;
}

template <typename T>
T source_scale(int64_t in, int64_t out, bool align_corners, std::optional<double> scale) {
  if (align_corners) return out > 1 ? static_cast<T>(in - 1) / static_cast<T>(out - 1) : T(0);
  if (scale && *scale > 0) return static_cast<T>(1.0 / *scale);
  return static_cast<T>(in) / static_cast<T>(out);
}

template <typename T>
T source_index(T scale, int64_t dst, bool align_corners) {
  if (align_corners) return scale * static_cast<T>(dst);
  const T src = scale * (static_cast<T>(dst) + T(0.5)) - T(0.5);
  return src < T(0) ? T(0) : src;
}

}  // namespace

EI_DECLARE_KERNEL(upsample_bilinear2d_vec_out) {
  Args args("aten::upsample_bilinear2d.vec_out", values);
  EI_RETURN_IF_ERROR(args.check_count(5, 1));
  EI_ASSIGN_OR_RETURN(Tensor * input, args.tensor(0, "input"));
  EI_ASSIGN_OR_RETURN(bool align_corners, args.bool_value(2, "align_corners"));
  EI_ASSIGN_OR_RETURN(Tensor * out, args.out_tensor(4, "out"));
  EI_ASSIGN_OR_RETURN(Resize r, plan_resize(args, *input, 1, 3, *out));
  return dispatch<DtypeSet::kFloating>(input->dtype, args.op(), "input", [&]<typename T>() {
    OverlapGuard guard(*input, *out);
    const T* x = guard.as<T>();
    T* y = out->data_as<T>();
    const T scale_h = source_scale<T>(r.in_h, r.out_h, align_corners, r.scale_h);
    const T scale_w = source_scale<T>(r.in_w, r.out_w, align_corners, r.scale_w);
    for (int64_t p = 0; p < r.planes; ++p) {
      const T* plane = x + p * r.in_h * r.in_w;
      for (int64_t oh = 0; oh < r.out_h; ++oh) {
        const T src_h = source_index(scale_h, oh, align_corners);
        const int64_t h0 = std::min(static_cast<int64_t>(src_h), r.in_h - 1);
        const int64_t h1 = std::min(h0 + 1, r.in_h - 1);
        const T lambda_h = src_h - static_cast<T>(h0);
        for (int64_t ow = 0; ow < r.out_w; ++ow) {
          const T src_w = source_index(scale_w, ow, align_corners);
          const int64_t w0 = std::min(static_cast<int64_t>(src_w), r.in_w - 1);
          const int64_t w1 = std::min(w0 + 1, r.in_w - 1);
          const T lambda_w = src_w - static_cast<T>(w0);
          const T top = (T(1) - lambda_w) * plane[h0 * r.in_w + w0] + lambda_w * plane[h0 * r.in_w + w1];
          const T bottom = (T(1) - lambda_w) * plane[h1 * r.in_w + w0] + lambda_w * plane[h1 * r.in_w + w1];
          y[(p * r.out_h + oh) * r.out_w + ow] = (T(1) - lambda_h) * top + lambda_h * bottom;
        }
      }
    }
    return Status::Ok();
  });
}

EI_DECLARE_KERNEL(upsample_nearest2d_vec_out) {
  Args args("aten::upsample_nearest2d.vec_out", values);
  EI_RETURN_IF_ERROR(args.check_count(4, 1));
  EI_ASSIGN_OR_RETURN(Tensor * input, args.tensor(0, "input"));
  EI_ASSIGN_OR_RETURN(Tensor * out, args.out_tensor(3, "out"));
  EI_ASSIGN_OR_RETURN(Resize r, plan_resize(args, *input, 1, 2, *out));
  // Source index floor(dst * scale), clamped to the input, with scale = 1 / scale_factor
  // when given, else in / out (computed in float, as ATen's nearest_idx).
  auto nearest = [](int64_t dst, int64_t in, int64_t out_size, std::optional<double> scale) {
    const float s = scale ? static_cast<float>(1.0 / *scale) : static_cast<float>(in) / static_cast<float>(out_size);
    return std::min(static_cast<int64_t>(std::floor(static_cast<float>(dst) * s)), in - 1);
  };
  std::vector<int64_t> rows(static_cast<size_t>(r.out_h));
  std::vector<int64_t> cols(static_cast<size_t>(r.out_w));
  for (int64_t oh = 0; oh < r.out_h; ++oh) rows[oh] = nearest(oh, r.in_h, r.out_h, r.scale_h);
  for (int64_t ow = 0; ow < r.out_w; ++ow) cols[ow] = nearest(ow, r.in_w, r.out_w, r.scale_w);
  if (r.in_h == 0 || r.in_w == 0) return Status::Ok();
  OverlapGuard guard(*input, *out);
  const size_t bytes = element_size(input->dtype);
  const auto* x = static_cast<const std::byte*>(guard.data());
  auto* y = static_cast<std::byte*>(out->data);
  for (int64_t p = 0; p < r.planes; ++p) {
    for (int64_t oh = 0; oh < r.out_h; ++oh) {
      for (int64_t ow = 0; ow < r.out_w; ++ow) {
        std::memcpy(y + ((p * r.out_h + oh) * r.out_w + ow) * bytes,
                    x + ((p * r.in_h + rows[oh]) * r.in_w + cols[ow]) * bytes, bytes);
      }
    }
  }
  return Status::Ok();
}

}  // namespace ei::kernels
