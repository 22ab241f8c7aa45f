#include "backends/packed_gemm.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#endif

namespace ei::xnn {

namespace {

#if defined(__AVX512F__)
constexpr int kPanel = 32;
constexpr int kRows = 14;  // 28 accumulators, 2 weight vectors and a broadcast: 31 of 32 registers
using Vector = __m512;
inline Vector vload(const float* p) { return _mm512_load_ps(p); }
inline Vector vzero() { return _mm512_setzero_ps(); }
inline Vector vbroadcast(const float* p) { return _mm512_set1_ps(*p); }
inline Vector vfma(Vector a, Vector b, Vector c) { return _mm512_fmadd_ps(a, b, c); }
inline Vector vload_partial(const float* p, int count) {
  if (count >= 16) return _mm512_loadu_ps(p);
  if (count <= 0) return _mm512_setzero_ps();
  return _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << count) - 1), p);
}
inline void vstore(float* p, Vector v, int count) {
  if (count >= 16) {
    _mm512_storeu_ps(p, v);
  } else if (count > 0) {
    _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << count) - 1), v);
  }
}
#elif defined(__AVX2__) && defined(__FMA__)
constexpr int kPanel = 16;
constexpr int kRows = 6;  // 12 accumulators, 2 weight vectors and a broadcast: 15 of 16 registers
using Vector = __m256;
inline Vector vload(const float* p) { return _mm256_load_ps(p); }
inline Vector vzero() { return _mm256_setzero_ps(); }
inline Vector vbroadcast(const float* p) { return _mm256_broadcast_ss(p); }
inline Vector vfma(Vector a, Vector b, Vector c) { return _mm256_fmadd_ps(a, b, c); }
inline Vector vload_partial(const float* p, int count) {
  if (count >= 8) return _mm256_loadu_ps(p);
  alignas(32) float lanes[8] = {};
  if (count > 0) std::memcpy(lanes, p, static_cast<size_t>(count) * sizeof(float));
  return _mm256_load_ps(lanes);
}
inline void vstore(float* p, Vector v, int count) {
  if (count >= 8) {
    _mm256_storeu_ps(p, v);
  } else if (count > 0) {
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, v);
    std::memcpy(p, lanes, static_cast<size_t>(count) * sizeof(float));
  }
}
#else
constexpr int kPanel = 0;
#endif

std::shared_ptr<float[]> allocate_floats(size_t count) {
  void* memory = std::aligned_alloc(64, (count * sizeof(float) + 63) / 64 * 64);
  if (memory == nullptr) return nullptr;
  return std::shared_ptr<float[]>(static_cast<float*>(memory), [](float* p) { std::free(p); });
}

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
constexpr int kLanes = static_cast<int>(sizeof(Vector) / sizeof(float));

// Inner indices per pass over a panel. A 192 x kPanel slice of the weights (24 KiB with
// AVX-512) stays in the L1 cache while every row block of the activation uses it, so each
// weight comes from memory once per call.
constexpr int64_t kDepth = 192;
// The kernel prefetches the next slice's weights into the L2 cache while it works on this
// one, so the first row block of a slice does not wait on memory. Measured on the ViT-B/32 layer
// shapes with weights far larger than the caches (2-core Xeon, AVX-512): 98 ms per image with
// no prefetch, 82 ms prefetching 16 indices ahead, 75 ms prefetching one slice ahead.
constexpr int64_t kPrefetchDistance = kDepth;
// Rows of activation per group: a group's rows (up to 150 x 3072 floats, 1.8 MiB) stay in a
// core's L2 cache while every weight panel passes them. Measured on 400 x 256 x 768 with
// the weights in cache (one core): 70 % of the FMA peak with all 400 rows in one pass, 82 %
// with 140 rows.
constexpr int64_t kGroupRows = 150;

// Adds a[rows, k] * panel[k, kPanel] to a rows x kPanel block of c, in order of k. The sums
// start from the bias on the first slice (`first`) and from c's partial sums afterwards, so
// each output is one sequential sum over the whole inner dimension.
template <int Rows>
void micro_kernel(int64_t k, const float* a, int64_t lda, const float* panel, bool first, const float* bias, float* c,
                  int64_t ldc, int columns) {
  Vector low[Rows], high[Rows];
  if (first) {
    Vector bias_low = bias ? vload(bias) : vzero();
    Vector bias_high = bias ? vload(bias + kLanes) : vzero();
    for (int r = 0; r < Rows; ++r) {
      low[r] = bias_low;
      high[r] = bias_high;
    }
  } else {
    for (int r = 0; r < Rows; ++r) {
      low[r] = vload_partial(c + r * ldc, columns);
      high[r] = vload_partial(c + r * ldc + kLanes, columns - kLanes);
    }
  }
  for (int64_t p = 0; p < k; ++p) {
    _mm_prefetch(reinterpret_cast<const char*>(panel + (p + kPrefetchDistance) * kPanel), _MM_HINT_T1);
    _mm_prefetch(reinterpret_cast<const char*>(panel + (p + kPrefetchDistance) * kPanel + kLanes), _MM_HINT_T1);
    Vector w_low = vload(panel + p * kPanel);
    Vector w_high = vload(panel + p * kPanel + kLanes);
    for (int r = 0; r < Rows; ++r) {
      Vector x = vbroadcast(a + r * lda + p);
      low[r] = vfma(x, w_low, low[r]);
      high[r] = vfma(x, w_high, high[r]);
    }
  }
  for (int r = 0; r < Rows; ++r) {
    vstore(c + r * ldc, low[r], columns);
    vstore(c + r * ldc + kLanes, high[r], columns - kLanes);
  }
}

template <int Rows>
void run_rows(int rows, int64_t k, const float* a, int64_t lda, const float* panel, bool first, const float* bias,
              float* c, int64_t ldc, int columns) {
  if constexpr (Rows > 0) {
    if (rows == Rows) {
      micro_kernel<Rows>(k, a, lda, panel, first, bias, c, ldc, columns);
    } else {
      run_rows<Rows - 1>(rows, k, a, lda, panel, first, bias, c, ldc, columns);
    }
  }
}
#endif

}  // namespace

int packed_panel_width() { return kPanel; }

bool pack_weights(ThreadPool* pool, const float* w, int64_t n, int64_t k, bool w_is_k_by_n, const float* bias,
                  PackedWeights& packed) {
  if (kPanel == 0 || n <= 0 || k <= 0) return false;
  int64_t panels = (n + kPanel - 1) / kPanel;
  packed.n = n;
  packed.k = k;
  packed.data = allocate_floats(static_cast<size_t>(panels * kPanel * k));
  if (!packed.data) return false;
  if (bias != nullptr) {
    packed.bias = allocate_floats(static_cast<size_t>(panels * kPanel));
    if (!packed.bias) return false;
    std::fill(packed.bias.get(), packed.bias.get() + panels * kPanel, 0.0f);
    std::memcpy(packed.bias.get(), bias, static_cast<size_t>(n) * sizeof(float));
  }
  float* out = packed.data.get();
  parallel_for(pool, static_cast<size_t>(panels), 1, [&](size_t begin, size_t end) {
    for (size_t panel = begin; panel < end; ++panel) {
      float* target = out + static_cast<int64_t>(panel) * kPanel * k;
      int64_t first = static_cast<int64_t>(panel) * kPanel;
      int64_t columns = std::min<int64_t>(kPanel, n - first);
      if (w_is_k_by_n) {
        for (int64_t p = 0; p < k; ++p) {
          float* row = target + p * kPanel;
          std::memcpy(row, w + p * n + first, static_cast<size_t>(columns) * sizeof(float));
          std::fill(row + columns, row + kPanel, 0.0f);
        }
      } else {
        if (columns < kPanel) std::fill(target, target + kPanel * k, 0.0f);
        for (int64_t j = 0; j < columns; ++j) {
          const float* source = w + (first + j) * k;
          for (int64_t p = 0; p < k; ++p) target[p * kPanel + j] = source[p];
        }
      }
    }
  });
  return true;
}

void packed_linear(ThreadPool* pool, std::span<const RowSegment> segments, const PackedWeights& weights,
                   const Activation& activation) {
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
  int64_t n = weights.n;
  int64_t k = weights.k;
  int64_t panels = (n + kPanel - 1) / kPanel;
  const float* data = weights.data.get();
  const float* bias = weights.bias.get();

  // Row blocks of nearly equal size within each segment (50 rows: 13, 13, 12, 12), because a
  // short last block would reload the whole panel for a few rows.
  struct Block {
    const float* a;
    int64_t lda;
    float* c;
    int64_t ldc;
    int rows;
  };
  std::vector<Block> blocks;
  std::vector<size_t> group_starts{0};
  int64_t total_rows = 0, group_rows = 0;
  for (const RowSegment& segment : segments) {
    int64_t count = (segment.m + kRows - 1) / kRows;
    for (int64_t block = 0, row = 0; block < count; ++block) {
      int rows = static_cast<int>((segment.m - row) / (count - block));
      if (group_rows > 0 && group_rows + rows > kGroupRows) {
        group_starts.push_back(blocks.size());
        group_rows = 0;
      }
      blocks.push_back({segment.a + row * segment.lda, segment.lda, segment.c + row * segment.ldc, segment.ldc, rows});
      group_rows += rows;
      row += rows;
    }
    total_rows += segment.m;
  }
  group_starts.push_back(blocks.size());
  if (blocks.empty()) return;
  int64_t groups = static_cast<int64_t>(group_starts.size()) - 1;

  // Work items are (row group, panel) pairs, group-major: a thread's consecutive items share
  // the group's activation rows, which stay in its L2 cache, while the weights stream past.
  size_t items = static_cast<size_t>(groups * panels);
  size_t grain = total_rows * n * k < (int64_t{1} << 20) ? items : 1;
  parallel_for(pool, items, grain, [&](size_t begin, size_t end) {
    for (size_t item = begin; item < end; ++item) {
      int64_t group = static_cast<int64_t>(item) / panels;
      int64_t panel = static_cast<int64_t>(item) % panels;
      int64_t first = panel * kPanel;
      int columns = static_cast<int>(std::min<int64_t>(kPanel, n - first));
      const float* panel_data = data + panel * kPanel * k;
      const float* panel_bias = bias ? bias + first : nullptr;
      for (int64_t depth = 0; depth < k; depth += kDepth) {
        int64_t slice = std::min(kDepth, k - depth);
        for (size_t b = group_starts[static_cast<size_t>(group)]; b < group_starts[static_cast<size_t>(group) + 1]; ++b) {
          const Block& block = blocks[b];
          run_rows<kRows>(block.rows, slice, block.a + depth, block.lda, panel_data + depth * kPanel, depth == 0,
                          panel_bias, block.c + first, block.ldc, columns);
        }
      }
      if (activation.kind == Activation::Kind::kNone) continue;
      for (size_t b = group_starts[static_cast<size_t>(group)]; b < group_starts[static_cast<size_t>(group) + 1]; ++b) {
        const Block& block = blocks[b];
        for (int r = 0; r < block.rows; ++r) apply_activation(activation, block.c + r * block.ldc + first, columns);
      }
    }
  });
#else
  (void)pool, (void)segments, (void)weights, (void)activation;
#endif
}

void packed_linear(ThreadPool* pool, int64_t m, const float* a, int64_t lda, const PackedWeights& weights, float* c,
                   int64_t ldc, const Activation& activation) {
  RowSegment segment{m, a, lda, c, ldc};
  packed_linear(pool, std::span<const RowSegment>(&segment, 1), weights, activation);
}

}  // namespace ei::xnn
