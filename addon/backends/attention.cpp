#include "backends/attention.h"

// GCC 12 warns that the undefined source operand inside some AVX-512 intrinsics (the unpacks,
// shuffles and _mm512_reduce_max_ps used here) may be used uninitialized once they are
// inlined: its bug 105593. The warnings point into the header, so they are off for it alone.
#if defined(__AVX512F__)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#endif

#include <algorithm>
#include <limits>

#include "backends/vector_math.h"

namespace ei::xnn {

namespace {

#if defined(__AVX512F__)
constexpr int kLanes = 16;
static_assert(kAttentionKeyBlock == kLanes, "a block of keys is one vector of lanes");
constexpr int kVectors = static_cast<int>(kAttentionMaxKeys / kLanes);
// 24 sums, 4 operand vectors and a broadcast: 29 of the 32 vector registers.
constexpr int kBlockRows = 6;
// Floats per row of the transposed keys and of the probabilities.
constexpr int64_t kRowFloats = kAttentionMaxKeys;

// Transposes 16 rows of 16 floats in registers: element l of row i goes to element i of row l.
// Unpacks pair the rows' floats, then their 64-bit pairs, and two rounds of 128-bit lane
// shuffles finish each 4 x 4 block of lanes.
inline void transpose_16x16(__m512 rows[kLanes]) {
  __m512 t[kLanes];
  EI_UNROLL(16)
  for (int i = 0; i < kLanes; i += 2) {
    t[i] = _mm512_unpacklo_ps(rows[i], rows[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(rows[i], rows[i + 1]);
  }
  // u[4q + c], lane L: column 4L + c of rows 4q to 4q + 3.
  __m512 u[kLanes];
  EI_UNROLL(16)
  for (int q = 0; q < kLanes; q += 4) {
    __m512d a = _mm512_castps_pd(t[q]), b = _mm512_castps_pd(t[q + 1]);
    __m512d c = _mm512_castps_pd(t[q + 2]), d = _mm512_castps_pd(t[q + 3]);
    u[q] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
    u[q + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
    u[q + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
    u[q + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
  }
  // Row 4L + c gathers lane L of u[c], u[4 + c], u[8 + c] and u[12 + c].
  EI_UNROLL(16)
  for (int c = 0; c < 4; ++c) {
    // Lanes 0 and 1 (low) or 2 and 3 (high) of the top rows' pair and of the bottom rows' pair.
    __m512 top_low = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x44);
    __m512 top_high = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xEE);
    __m512 bottom_low = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x44);
    __m512 bottom_high = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xEE);
    rows[c] = _mm512_shuffle_f32x4(top_low, bottom_low, 0x88);
    rows[4 + c] = _mm512_shuffle_f32x4(top_low, bottom_low, 0xDD);
    rows[8 + c] = _mm512_shuffle_f32x4(top_high, bottom_high, 0x88);
    rows[12 + c] = _mm512_shuffle_f32x4(top_high, bottom_high, 0xDD);
  }
}

// Computes rows i0 to i0 + Rows - 1 of one head's output. keys_t is [dk][kRowFloats] with key j
// in column j, and the scores of its columns past n are computed but not used. probabilities
// has room for Rows rows of kRowFloats.
template <int Rows>
void head_rows(int64_t i0, int64_t n, int64_t dk, int64_t dv, const AttentionOperand& q, const float* keys_t,
               float scale, const AttentionOperand& v, float* o, int64_t o_row_stride, float* probabilities) {
  // Scores: one sequential sum over d per element, as a matrix product computes it.
  __m512 sums[Rows][kVectors];
  EI_UNROLL(16)
  for (int r = 0; r < Rows; ++r) {
    EI_UNROLL(16)
    for (int c = 0; c < kVectors; ++c) sums[r][c] = _mm512_setzero_ps();
  }
  const float* query = q.data + i0 * q.rows;
  for (int64_t d = 0; d < dk; ++d) {
    __m512 keys[kVectors];
    EI_UNROLL(16)
    for (int c = 0; c < kVectors; ++c) keys[c] = _mm512_loadu_ps(keys_t + d * kRowFloats + c * kLanes);
    EI_UNROLL(16)
    for (int r = 0; r < Rows; ++r) {
      __m512 x = _mm512_set1_ps(query[r * q.rows + d * q.columns]);
      EI_UNROLL(16)
      for (int c = 0; c < kVectors; ++c) sums[r][c] = _mm512_fmadd_ps(x, keys[c], sums[r][c]);
    }
  }

  // Softmax, with the roundings of the Multiply and Softmax nodes (softmax_rows() in
  // xnnpack_ops.cpp): the scaled score, its maximum, exp_fast(score - maximum), a sequential
  // sum, and a multiply by the sum's reciprocal. max(score, running) ignores a NaN score as
  // std::max(running, score) does there.
  const __m512 scales = _mm512_set1_ps(scale);
  EI_UNROLL(16)
  for (int r = 0; r < Rows; ++r) {
    __m512 running = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
    EI_UNROLL(16)
    for (int c = 0; c < kVectors; ++c) {
      sums[r][c] = _mm512_mul_ps(sums[r][c], scales);
      running = _mm512_mask_max_ps(running, lane_mask(n - c * kLanes), sums[r][c], running);
    }
    __m512 maximum = _mm512_set1_ps(_mm512_reduce_max_ps(running));
    // Lanes past the keys hold scores of unused columns. They take the maximum, so that their
    // exponential is 1, and are stored as 0.
    EI_UNROLL(16)
    for (int c = 0; c < kVectors; ++c) {
      __mmask16 valid = lane_mask(n - c * kLanes);
      __m512 e = exp_fast(_mm512_sub_ps(_mm512_mask_mov_ps(maximum, valid, sums[r][c]), maximum));
      _mm512_storeu_ps(probabilities + r * kRowFloats + c * kLanes, _mm512_maskz_mov_ps(valid, e));
    }
  }
  float totals[Rows] = {};
  for (int64_t j = 0; j < n; ++j) {
    EI_UNROLL(16)
    for (int r = 0; r < Rows; ++r) totals[r] += probabilities[r * kRowFloats + j];
  }
  EI_UNROLL(16)
  for (int r = 0; r < Rows; ++r) {
    __m512 reciprocal = _mm512_set1_ps(1.0f / totals[r]);
    EI_UNROLL(16)
    for (int c = 0; c < kVectors; ++c) {
      float* lanes = probabilities + r * kRowFloats + c * kLanes;
      _mm512_storeu_ps(lanes, _mm512_mul_ps(_mm512_loadu_ps(lanes), reciprocal));
    }
  }

  // Output: one sequential sum over the keys per element.
  __m512 outputs[Rows][kVectors];
  EI_UNROLL(16)
  for (int r = 0; r < Rows; ++r) {
    EI_UNROLL(16)
    for (int c = 0; c < kVectors; ++c) outputs[r][c] = _mm512_setzero_ps();
  }
  for (int64_t j = 0; j < n; ++j) {
    __m512 values[kVectors];
    EI_UNROLL(16)
    for (int c = 0; c < kVectors; ++c) {
      values[c] = _mm512_maskz_loadu_ps(lane_mask(dv - c * kLanes), v.data + j * v.rows + c * kLanes);
    }
    EI_UNROLL(16)
    for (int r = 0; r < Rows; ++r) {
      __m512 x = _mm512_set1_ps(probabilities[r * kRowFloats + j]);
      EI_UNROLL(16)
      for (int c = 0; c < kVectors; ++c) outputs[r][c] = _mm512_fmadd_ps(x, values[c], outputs[r][c]);
    }
  }
  EI_UNROLL(16)
  for (int r = 0; r < Rows; ++r) {
    float* row = o + (i0 + r) * o_row_stride;
    EI_UNROLL(16)
    for (int c = 0; c < kVectors; ++c) _mm512_mask_storeu_ps(row + c * kLanes, lane_mask(dv - c * kLanes), outputs[r][c]);
  }
}

template <int Rows>
void run_rows(int rows, int64_t i0, int64_t n, int64_t dk, int64_t dv, const AttentionOperand& q, const float* keys_t,
              float scale, const AttentionOperand& v, float* o, int64_t o_row_stride, float* probabilities) {
  if constexpr (Rows > 0) {
    if (rows == Rows) {
      head_rows<Rows>(i0, n, dk, dv, q, keys_t, scale, v, o, o_row_stride, probabilities);
    } else {
      run_rows<Rows - 1>(rows, i0, n, dk, dv, q, keys_t, scale, v, o, o_row_stride, probabilities);
    }
  }
}
#endif

}  // namespace

bool attention_kernel_available() {
#if defined(__AVX512F__)
  return true;
#else
  return false;
#endif
}

int64_t attention_keys_floats(int64_t dk) {
#if defined(__AVX512F__)
  return dk * kRowFloats;
#else
  (void)dk;
  return 0;
#endif
}

int64_t attention_scratch_floats() {
#if defined(__AVX512F__)
  return kBlockRows * kRowFloats;
#else
  return 0;
#endif
}

void attention_transpose_keys(int64_t j0, int64_t n, int64_t dk, AttentionOperand k, float* keys_t) {
#if defined(__AVX512F__)
  for (int64_t d0 = 0; d0 < dk; d0 += kLanes) {
    __m512 block[kLanes];
    if (k.columns == 1) {
      __mmask16 mask = lane_mask(dk - d0);
      EI_UNROLL(16)
      for (int i = 0; i < kLanes; ++i) {
        block[i] = j0 + i < n ? _mm512_maskz_loadu_ps(mask, k.data + (j0 + i) * k.rows + d0) : _mm512_setzero_ps();
      }
    } else {
      alignas(64) float lanes[kLanes];
      for (int i = 0; i < kLanes; ++i) {
        for (int l = 0; l < kLanes; ++l) {
          lanes[l] = j0 + i < n && d0 + l < dk ? k.data[(j0 + i) * k.rows + (d0 + l) * k.columns] : 0.0f;
        }
        block[i] = _mm512_load_ps(lanes);
      }
    }
    transpose_16x16(block);
    for (int64_t i = 0; i < kLanes && d0 + i < dk; ++i) _mm512_storeu_ps(keys_t + (d0 + i) * kRowFloats + j0, block[i]);
  }
#else
  (void)j0, (void)n, (void)dk, (void)k, (void)keys_t;
#endif
}

void attention_head(int64_t m, int64_t n, int64_t dk, int64_t dv, AttentionOperand q, const float* keys_t, float scale,
                    AttentionOperand v, float* o, int64_t o_row_stride, float* scratch) {
#if defined(__AVX512F__)
  // Subnormal inputs and results count as zero here. Softmax makes them: probabilities far
  // below the largest (scores with a wide range, as seeded weights give) and exp_fast() near its
  // cutoff. Each one costs the CPU a microcode assist (about a hundred cycles, an estimate), and
  // a ViT-B/32-sized head with widely spread scores took three times as long. They stand for
  // values below 1.2e-38.
  const unsigned int control = _mm_getcsr();
  _mm_setcsr(control | _MM_FLUSH_ZERO_ON | 0x0040);  // 0x0040: denormals are zero
  // Row blocks of nearly equal size (50 rows: 5, 5, 5, 5, 6, 6, 6, 6, 6).
  int64_t blocks = (m + kBlockRows - 1) / kBlockRows;
  for (int64_t block = 0, row = 0; block < blocks; ++block) {
    int rows = static_cast<int>((m - row) / (blocks - block));
    run_rows<kBlockRows>(rows, row, n, dk, dv, q, keys_t, scale, v, o, o_row_stride, scratch);
    row += rows;
  }
  _mm_setcsr(control);
#else
  (void)m, (void)n, (void)dk, (void)dv, (void)q, (void)keys_t, (void)scale, (void)v, (void)o, (void)o_row_stride,
      (void)scratch;
#endif
}

}  // namespace ei::xnn
