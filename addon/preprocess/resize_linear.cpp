// OpenCV's INTER_LINEAR for 8-bit images (modules/imgproc/src/resize.cpp, 4.x), written from
// its algorithm:
//
// - Source coordinates are centre-aligned: x_src = (x_dst + 0.5) * scale - 0.5, where
//   scale = 1 / (dst_size / src_size) in double, and the result is rounded to float.
// - Columns: a coordinate left of the first pixel or right of the last one clamps to that
//   pixel, with weights (2048, 0). Rows keep their fractional weights, and the two row
//   indices are clamped to the image afterwards, which can round differently by one level.
// - Each output pixel mixes two columns and two rows with 11-bit fixed-point weights
//   round((1 - f) * 2048) and round(f * 2048), rounded half to even as cvRound does.
// - Rows are filtered first into int sums (value * 2048 scale); the vertical step computes
//   (((w0 * (r0 >> 4)) >> 16) + ((w1 * (r1 >> 4)) >> 16) + 2) >> 2, the formula of
//   OpenCV's VResizeLinear specialization for uchar, whose SIMD and scalar code agree.
// - When the source is exactly twice the destination in both directions, OpenCV switches
//   INTER_LINEAR to its fast 2x2 area average, (a + b + c + d + 2) >> 2.
//
// This file is compiled with -ffp-contract=off: a fused multiply-add in the coordinate
// formula would round differently from OpenCV's x86-64 build.
#include "preprocess/resize_linear.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <vector>

namespace ei::preprocess {
namespace {

constexpr int kCoefBits = 11;
constexpr float kCoefScale = static_cast<float>(1 << kCoefBits);

// One output coordinate along an axis: the first source index and the two weights.
struct Tap {
  int index;
  int16_t weight0;
  int16_t weight1;
};

// cvRound followed by saturate_cast<short>: nearest integer, ties to even.
int16_t round_to_short(float value) {
  float rounded = std::nearbyint(value);
  rounded = std::clamp(rounded, -32768.0f, 32767.0f);
  return static_cast<int16_t>(rounded);
}

std::vector<Tap> compute_taps(int src_size, int dst_size, bool clamp_weights) {
  double inverse_scale = static_cast<double>(dst_size) / src_size;
  double scale = 1.0 / inverse_scale;
  std::vector<Tap> taps(static_cast<size_t>(dst_size));
  for (int d = 0; d < dst_size; ++d) {
    double position = (d + 0.5) * scale;
    float f = static_cast<float>(position - 0.5);
    int s = static_cast<int>(std::floor(f));
    f -= static_cast<float>(s);
    if (clamp_weights && s < 0) {
      s = 0;
      f = 0.0f;
    }
    if (clamp_weights && s >= src_size - 1) {
      s = src_size - 1;
      f = 0.0f;
    }
    taps[static_cast<size_t>(d)] = Tap{s, round_to_short((1.0f - f) * kCoefScale), round_to_short(f * kCoefScale)};
  }
  return taps;
}

// True when 1 / (dst / src) is an integer to within DBL_EPSILON, OpenCV's test for its
// integer-ratio area paths.
bool is_integer_ratio(int src_size, int dst_size, int* ratio) {
  double scale = 1.0 / (static_cast<double>(dst_size) / src_size);
  double nearest = std::nearbyint(scale);
  *ratio = static_cast<int>(nearest);
  return std::abs(scale - nearest) < DBL_EPSILON;
}

void resize_half(const uint8_t* src, int src_width, int channels, uint8_t* dst, int dst_width, int dst_height) {
  size_t src_stride = static_cast<size_t>(src_width) * channels;
  size_t dst_stride = static_cast<size_t>(dst_width) * channels;
  for (int y = 0; y < dst_height; ++y) {
    const uint8_t* top = src + static_cast<size_t>(2 * y) * src_stride;
    const uint8_t* bottom = top + src_stride;
    uint8_t* out = dst + static_cast<size_t>(y) * dst_stride;
    for (int x = 0; x < dst_width; ++x) {
      for (int c = 0; c < channels; ++c) {
        size_t left = static_cast<size_t>(2 * x) * channels + c;
        size_t right = left + channels;
        int sum = top[left] + top[right] + bottom[left] + bottom[right];
        out[static_cast<size_t>(x) * channels + c] = static_cast<uint8_t>((sum + 2) >> 2);
      }
    }
  }
}

void filter_row(const uint8_t* row, int channels, const std::vector<Tap>& taps, int32_t* out) {
  for (size_t x = 0; x < taps.size(); ++x) {
    const Tap& tap = taps[x];
    const uint8_t* p0 = row + static_cast<size_t>(tap.index) * channels;
    // The clamped last column has weight1 == 0, so reading the same pixel twice is exact.
    const uint8_t* p1 = tap.weight1 != 0 ? p0 + channels : p0;
    for (int c = 0; c < channels; ++c) {
      out[x * channels + c] = p0[c] * tap.weight0 + p1[c] * tap.weight1;
    }
  }
}

}  // namespace

void resize_linear_u8(const uint8_t* src, int src_width, int src_height, int channels, uint8_t* dst,
                      int dst_width, int dst_height) {
  size_t dst_bytes = static_cast<size_t>(dst_width) * dst_height * channels;
  if (src_width == dst_width && src_height == dst_height) {
    std::memcpy(dst, src, dst_bytes);
    return;
  }
  int ratio_x = 0;
  int ratio_y = 0;
  if (is_integer_ratio(src_width, dst_width, &ratio_x) && is_integer_ratio(src_height, dst_height, &ratio_y) &&
      ratio_x == 2 && ratio_y == 2) {
    resize_half(src, src_width, channels, dst, dst_width, dst_height);
    return;
  }

  std::vector<Tap> columns = compute_taps(src_width, dst_width, true);
  std::vector<Tap> rows = compute_taps(src_height, dst_height, false);
  size_t src_stride = static_cast<size_t>(src_width) * channels;
  size_t row_samples = static_cast<size_t>(dst_width) * channels;

  // Two filtered rows, reused while consecutive output rows share source rows.
  std::vector<int32_t> buffers[2] = {std::vector<int32_t>(row_samples), std::vector<int32_t>(row_samples)};
  int buffered[2] = {-1, -1};
  auto filtered = [&](int source_row) -> const int32_t* {
    for (int b = 0; b < 2; ++b) {
      if (buffered[b] == source_row) return buffers[b].data();
    }
    // Replace the buffer with the lower row, because rows only move down.
    int slot = buffered[0] < buffered[1] ? 0 : 1;
    filter_row(src + static_cast<size_t>(source_row) * src_stride, channels, columns, buffers[slot].data());
    buffered[slot] = source_row;
    return buffers[slot].data();
  };

  for (int y = 0; y < dst_height; ++y) {
    const Tap& tap = rows[static_cast<size_t>(y)];
    int row0 = std::clamp(tap.index, 0, src_height - 1);
    int row1 = std::clamp(tap.index + 1, 0, src_height - 1);
    const int32_t* r0 = filtered(row0);
    const int32_t* r1 = filtered(row1);
    int32_t w0 = tap.weight0;
    int32_t w1 = tap.weight1;
    uint8_t* out = dst + static_cast<size_t>(y) * row_samples;
    for (size_t i = 0; i < row_samples; ++i) {
      int32_t value = (((w0 * (r0[i] >> 4)) >> 16) + ((w1 * (r1[i] >> 4)) >> 16) + 2) >> 2;
      out[i] = static_cast<uint8_t>(std::clamp(value, 0, 255));
    }
  }
}

}  // namespace ei::preprocess
