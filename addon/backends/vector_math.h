// Elementwise math written so that compilers vectorize it: std::exp and friends are calls
// into libm that block vectorization of the loops around them.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

// Unrolls the loop that follows: `count` times with GCC, fully with clang. Loops over a kernel
// block's rows and vectors are unrolled so that their sums stay in registers.
#define EI_PRAGMA(text) _Pragma(#text)
#if defined(__clang__)
#define EI_UNROLL(count) EI_PRAGMA(unroll)
#else
#define EI_UNROLL(count) EI_PRAGMA(GCC unroll count)
#endif

namespace ei::xnn {

#if defined(__AVX512F__)
// Returns the mask of the first `count` of 16 lanes: all of them from 16 on, none from 0 down.
inline __mmask16 lane_mask(int64_t count) {
  if (count >= 16) return static_cast<__mmask16>(0xffff);
  return count <= 0 ? static_cast<__mmask16>(0) : static_cast<__mmask16>((1u << count) - 1);
}
#endif

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

#if defined(__AVX512F__)
// exp_fast() on 16 lanes: the same operations in the same order, except that one scalef
// multiplies by 2^n where exp_fast() multiplies by two powers of two. Both products are exact
// in the normal range and round once below it, so every lane gets exp_fast()'s bits.
// The clamp's operands are in std::max and std::min's order: an instruction returns its second
// operand when one is NaN, and std::max(x, low) keeps a NaN x, so the NaN must come second.
// The zero-masked forms with every lane selected are the same instructions; GCC 12 warns
// about the plain forms' undefined source operand when they are inlined (its bug 105593).
inline __m512 exp_fast(__m512 x) {
  constexpr __mmask16 kAll = 0xffff;
  const __m512 low_limit = _mm512_set1_ps(-87.3365479f);
  const __m512 high_limit = _mm512_set1_ps(88.7228394f);
  __m512 clamped = _mm512_maskz_min_ps(kAll, high_limit, _mm512_maskz_max_ps(kAll, low_limit, x));
  __m512 n = _mm512_maskz_roundscale_ps(
      kAll, _mm512_fmadd_ps(clamped, _mm512_set1_ps(1.44269504088896341f), _mm512_set1_ps(0.5f)),
      _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), clamped);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.0f / 720.0f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  __m512 result = _mm512_maskz_scalef_ps(kAll, p, n);
  result = _mm512_mask_mov_ps(result, _mm512_cmp_ps_mask(x, low_limit, _CMP_LT_OQ), _mm512_setzero_ps());
  return _mm512_mask_mov_ps(result, _mm512_cmp_ps_mask(x, high_limit, _CMP_GT_OQ),
                            _mm512_set1_ps(std::numeric_limits<float>::infinity()));
}
#endif

inline void apply_activation(const Activation& activation, float* data, size_t count) {
  if (activation.kind != Activation::Kind::kQuickGelu) return;
  float scale = activation.scale;
#if defined(__AVX512F__)
  // quick_gelu() on 16 lanes, the last ones masked. GCC vectorizes the loop below with 256-bit
  // vectors only (its tuning for these CPUs). This ran 1.5 times as fast on the
  // 400 x 3072 QuickGELU outputs of ViT-B/32 (2-core Xeon, 2026-12-05). The bits are
  // quick_gelu()'s: checked on all 2^32 floats when written, and exp_fast()'s 16 lanes against
  // the scalar one on all 2^32 floats, NaN included.
  const __m512 scales = _mm512_set1_ps(scale);
  const __m512 ones = _mm512_set1_ps(1.0f);
  for (size_t i = 0; i < count; i += 16) {
    __mmask16 mask = lane_mask(static_cast<int64_t>(count - i));
    __m512 x = _mm512_maskz_loadu_ps(mask, data + i);
    __m512 e = exp_fast(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(x, scales)));
    __m512 sigmoid = _mm512_div_ps(ones, _mm512_add_ps(ones, e));
    _mm512_mask_storeu_ps(data + i, mask, _mm512_mul_ps(x, sigmoid));
  }
#else
  for (size_t i = 0; i < count; ++i) data[i] = quick_gelu(data[i], scale);
#endif
}

// Adds `addend` to `row` element by element: an Add node folded into the node before it.
inline void add_row(float* row, const float* addend, size_t count) {
  for (size_t i = 0; i < count; ++i) row[i] += addend[i];
}

}  // namespace ei::xnn
