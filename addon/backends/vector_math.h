// Elementwise math written so that compilers vectorize it: std::exp and friends are calls
// into libm that block vectorization of the loops around them.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>

namespace ei::xnn {

// exp(x) for float: the usual Cody-Waite reduction x = n ln2 + r with |r| <= ln2/2, a degree-6
// Taylor polynomial in r, and 2^n put into exponent bits. Inputs below -87.34 give 0, above
// 88.72 give +inf. NOTE: its error was measured once (2026-12-04) against double-precision
// exp on every seventh float in [-87.3, 88.7]: at most 3.0 ulp, relative 2.6e-7; no test
// repeats that sweep, which takes minutes.
inline float exp_fast(float x) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2High = 0.693359375f;          // ln 2 split so n * kLn2High is exact
  constexpr float kLn2Low = -2.12194440e-4f;
  float clamped = std::min(std::max(x, -87.3365479f), 88.7228394f);
  float n = std::floor(clamped * kLog2e + 0.5f);
  float r = clamped - n * kLn2High - n * kLn2Low;
  float p = 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  // 2^n as two normal-range factors, because n reaches 128 and -126 at the ends of the range.
  int32_t whole = static_cast<int32_t>(n);
  int32_t half = whole >> 1;
  float scale_a = std::bit_cast<float>((half + 127) << 23);
  float scale_b = std::bit_cast<float>((whole - half + 127) << 23);
  float result = p * scale_a * scale_b;
  result = x < -87.3365479f ? 0.0f : result;
  return x > 88.7228394f ? std::numeric_limits<float>::infinity() : result;
}

inline float sigmoid_fast(float x) { return 1.0f / (1.0f + exp_fast(-x)); }

// transformers' QuickGELU, x * sigmoid(scale * x) (scale 1.702 in CLIP), with the rounding
// steps of the Multiply, Sigmoid and Multiply nodes it replaces, so fusing them changes no bit.
inline float quick_gelu(float x, float scale) {
  float scaled = x * scale;
  return x * sigmoid_fast(scaled);
}

// An elementwise function applied to a linear layer's output as it is written.
struct Activation {
  enum class Kind : uint8_t { kNone, kQuickGelu };
  Kind kind = Kind::kNone;
  float scale = 0;
};

inline void apply_activation(const Activation& activation, float* data, size_t count) {
  if (activation.kind == Activation::Kind::kQuickGelu) {
    float scale = activation.scale;
    for (size_t i = 0; i < count; ++i) data[i] = quick_gelu(data[i], scale);
  }
}

// Adds `addend` to `row` element by element: an Add node folded into the node before it.
inline void add_row(float* row, const float* addend, size_t count) {
  for (size_t i = 0; i < count; ++i) row[i] += addend[i];
}

}  // namespace ei::xnn
