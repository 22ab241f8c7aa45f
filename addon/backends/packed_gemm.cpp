#include "backends/packed_gemm.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include <unistd.h>
#if defined(__APPLE__)
#include <sys/sysctl.h>
#endif

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#endif

namespace ei::xnn {

namespace {

#if defined(__AVX512F__)
// A kernel block is kRows rows by kVectors vectors of columns. 9 x 3 keeps 27 sums, 3 weight
// vectors and a broadcast in 31 of the 32 registers, and needs fewer loads per multiply-add
// than 14 x 2. In batches of 8 ViT-B/32 calls (segments of 50 rows) the products ran 3-5 %
// faster than with blocks of 14 x 2 (2026-12-05, 2-core Xeon).
constexpr int kVectors = 3;
constexpr int kRows = 9;
using Vector = __m512;
inline Vector vload(const float* p) { return _mm512_load_ps(p); }
inline Vector vzero() { return _mm512_setzero_ps(); }
inline Vector vbroadcast(const float* p) { return _mm512_set1_ps(*p); }
inline Vector vfma(Vector a, Vector b, Vector c) { return _mm512_fmadd_ps(a, b, c); }
inline Vector vadd(Vector a, Vector b) { return _mm512_add_ps(a, b); }
inline Vector vload_partial(const float* p, int count) {
  if (count >= 16) return _mm512_loadu_ps(p);
  if (count <= 0) return _mm512_setzero_ps();
  return _mm512_maskz_loadu_ps(lane_mask(count), p);
}
inline void vstore(float* p, Vector v, int count) {
  if (count >= 16) {
    _mm512_storeu_ps(p, v);
  } else if (count > 0) {
    _mm512_mask_storeu_ps(p, lane_mask(count), v);
  }
}
#elif defined(__AVX2__) && defined(__FMA__)
constexpr int kVectors = 2;
constexpr int kRows = 6;  // 12 accumulators, 2 weight vectors and a broadcast: 15 of 16 registers
using Vector = __m256;
inline Vector vload(const float* p) { return _mm256_load_ps(p); }
inline Vector vzero() { return _mm256_setzero_ps(); }
inline Vector vbroadcast(const float* p) { return _mm256_broadcast_ss(p); }
inline Vector vfma(Vector a, Vector b, Vector c) { return _mm256_fmadd_ps(a, b, c); }
inline Vector vadd(Vector a, Vector b) { return _mm256_add_ps(a, b); }
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
constexpr int kVectors = 0;
#endif

std::shared_ptr<float[]> allocate_floats(size_t count) {
  void* memory = std::aligned_alloc(64, (count * sizeof(float) + 63) / 64 * 64);
  if (memory == nullptr) return nullptr;
  return std::shared_ptr<float[]>(static_cast<float*>(memory), [](float* p) { std::free(p); });
}

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
constexpr int kLanes = static_cast<int>(sizeof(Vector) / sizeof(float));
constexpr int kPanel = kVectors * kLanes;
// Start values, scale and offset of fma_peak_gflops()'s chains: x * 0.999999 + 1e-6 stays
// near 1, far from overflow and subnormals.
constexpr float kChainStart[6] = {1.0f, 1.1f, 1.2f, 1.3f, 0.999999f, 1e-6f};

// Blocking, after the structure of onnxruntime's MLAS SGEMM (1.31) for packed weights:
// products run in slices of inner indices by up to kSliceN output columns. Within a slice the
// kernel walks the column groups for one row block at a time, so that block's activations
// come from cache. The slice's weights stay in the L2 cache while the row blocks walk them.
// This was measured on a 2-core Xeon (AVX-512) with the ViT-B/32 layer shapes and weights far
// larger than the caches. For 8 images on 2 threads the products took 29-30 ms per image (78 %
// of the FMA peak), against 32-34 ms for one 32-column panel through all of k with the row
// blocks inside. Slices of 256 x 128 (MLAS's sizes) ran 1-3 ms slower per image here. Walking
// the row blocks inside each column group, with slices 192 to 384 deep so that a group's
// weights stay in the L1 cache, ran 9-17 % slower.
//
// A slice is as deep as slice_bytes() of its weights allow: the whole inner dimension for
// every ViT-B/32 layer. 3072-deep products of 400 x 768 ran 3-5 % faster in one slice than in
// four of 768 (each later slice reloads and stores the partial sums), and slices of 256 or 384
// ran 4-10 % slower than 768.
//
// slice_bytes() is 5/8 of the L2 cache of one core: 1.25 MiB with 2 MiB of L2 (the Xeons these
// sizes were first tuned on), 640 KiB with 1 MiB. On a 2-core AMD EPYC (Zen 5, 1 MiB of L2 per
// core), 8 concurrent ViT-B/32 calls ran 0.6 % (median) to 1.5 % (mean) faster with 640 KiB
// slices than with 1.25 MiB. They were faster in 8 of 10 alternated rounds (2026-12-05). Each
// process's physical pages change the timings by a few percent, so only many rounds tell.
int64_t slice_bytes() {
  static const int64_t bytes = [] {
    int64_t l2 = 0;
#if defined(_SC_LEVEL2_CACHE_SIZE)
    l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
#elif defined(__APPLE__)
    size_t size = sizeof(l2);
    if (sysctlbyname("hw.l2cachesize", &l2, &size, nullptr, 0) != 0) l2 = 0;
#endif
    // Unknown or implausible sizes (some virtual machines report 0) fall back to 2 MiB.
    if (l2 < (int64_t{256} << 10) || l2 > (int64_t{64} << 20)) l2 = int64_t{2} << 20;
    return l2 / 8 * 5;
  }();
  return bytes;
}
constexpr int64_t kSliceN = 16 * kLanes;
// Column slices per thread to aim for when n is small, so threads finish together.
constexpr int64_t kSlicesPerThread = 4;
// The kernel prefetches weights this many bytes ahead (16 inner indices) into the L1 cache.
constexpr int kPrefetchBytes = 1024;

// Adds a[rows, k] * w[k, Vectors * kLanes] to a rows x (Vectors * kLanes) block of c, in order
// of k. The block's weight vectors come from adjacent kLanes-column panels, `w`, `w +
// panel_stride` and so on. The sums start from the bias on the first slice (`first`) and from
// c's partial sums afterwards, so each output is one sequential sum over the whole inner
// dimension, whatever the slicing.
template <int Rows, int Vectors>
void micro_kernel(int64_t k, const float* a, int64_t lda, const float* w, int64_t panel_stride, bool first,
                  const float* bias, float* c, int64_t ldc, int columns) {
  Vector sums[Rows][Vectors];
  for (int v = 0; v < Vectors; ++v) {
    int count = columns - v * kLanes;
    Vector start = bias && first ? vload_partial(bias + v * kLanes, count) : vzero();
    for (int r = 0; r < Rows; ++r) sums[r][v] = first ? start : vload_partial(c + r * ldc + v * kLanes, count);
  }
  // Row r of a is read as rows[r / 3] + (r % 3) * lda, an address of the form base + index *
  // scale. With 13-row blocks, one pointer per row needed more general registers than there
  // are, and products of 400 x 768 x 3072 ran about 2 % faster this way. With 9 rows both
  // forms ran the same.
  constexpr int kBases = (Rows + 2) / 3;
  const float* rows[kBases];
  for (int i = 0; i < kBases; ++i) rows[i] = a + 3 * i * lda;
  for (int64_t p = 0; p < k; ++p) {
    Vector weights[Vectors];
    EI_UNROLL(4)
    for (int v = 0; v < Vectors; ++v) {
      const float* panel = w + v * panel_stride + p * kLanes;
      _mm_prefetch(reinterpret_cast<const char*>(panel) + kPrefetchBytes, _MM_HINT_T0);
      weights[v] = vload(panel);
    }
    EI_UNROLL(16)
    for (int r = 0; r < Rows; ++r) {
      Vector x = vbroadcast(rows[r / 3] + (r % 3) * lda + p);
      EI_UNROLL(4)
      for (int v = 0; v < Vectors; ++v) sums[r][v] = vfma(x, weights[v], sums[r][v]);
    }
  }
  for (int r = 0; r < Rows; ++r) {
    for (int v = 0; v < Vectors; ++v) vstore(c + r * ldc + v * kLanes, sums[r][v], columns - v * kLanes);
  }
}

// Runs the kernel for `rows` rows (1 to Rows) of a block `vectors` vectors wide (1 to
// kVectors): the last block of a product may be narrower.
template <int Rows>
void run_block(int rows, int vectors, int64_t k, const float* a, int64_t lda, const float* w, int64_t panel_stride,
               bool first, const float* bias, float* c, int64_t ldc, int columns) {
  if constexpr (Rows > 0) {
    if (rows != Rows) {
      run_block<Rows - 1>(rows, vectors, k, a, lda, w, panel_stride, first, bias, c, ldc, columns);
    } else if (vectors >= kVectors) {
      micro_kernel<Rows, kVectors>(k, a, lda, w, panel_stride, first, bias, c, ldc, columns);
    } else if (vectors == 2) {
      micro_kernel<Rows, 2>(k, a, lda, w, panel_stride, first, bias, c, ldc, columns);
    } else {
      micro_kernel<Rows, 1>(k, a, lda, w, panel_stride, first, bias, c, ldc, columns);
    }
  }
}

// Columns of the packed layout: n rounded up to a whole number of panels.
int64_t aligned_columns(int64_t n) { return (n + kLanes - 1) / kLanes * kLanes; }
#endif

}  // namespace

int packed_panel_width() {
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
  return kPanel;
#else
  return 0;
#endif
}

double fma_peak_gflops(double seconds) {
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
  // 24 independent chains, more than the FMA units' latency times their count needs.
  constexpr int kChains = 24;
  Vector sums[kChains];
  for (int i = 0; i < kChains; ++i) sums[i] = vbroadcast(&kChainStart[i % 4]);
  Vector scale = vbroadcast(&kChainStart[4]);
  Vector offset = vbroadcast(&kChainStart[5]);
  constexpr int64_t kStepsPerCheck = 1 << 16;
  int64_t steps = 0;
  auto start = std::chrono::steady_clock::now();
  double elapsed = 0;
  do {
    for (int64_t step = 0; step < kStepsPerCheck; ++step) {
      EI_UNROLL(32)
      for (int i = 0; i < kChains; ++i) sums[i] = vfma(sums[i], scale, offset);
      // An empty asm that may change `scale` keeps the compiler from running each chain to the
      // end before the next (one chain at a time would measure latency, not throughput).
      __asm__ volatile("" : "+v"(scale));
    }
    steps += kStepsPerCheck;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  } while (elapsed < seconds);
  // Keep the sums alive so the loop is not removed.
  alignas(64) float lanes[kLanes];
  Vector total = sums[0];
  for (int i = 1; i < kChains; ++i) total = vadd(total, sums[i]);
  vstore(lanes, total, kLanes);
  volatile float sink = lanes[0];
  (void)sink;
  return static_cast<double>(steps) * kChains * kLanes * 2 / elapsed / 1e9;
#else
  (void)seconds;
  return 0;
#endif
}

bool pack_weights(ThreadPool* pool, const float* w, int64_t n, int64_t k, bool w_is_k_by_n, const float* bias,
                  PackedWeights& packed) {
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
  if (n <= 0 || k <= 0) return false;
  int64_t columns = aligned_columns(n);
  packed.n = n;
  packed.k = k;
  packed.data = allocate_floats(static_cast<size_t>(columns * k));
  if (!packed.data) return false;
  if (bias != nullptr) {
    packed.bias = allocate_floats(static_cast<size_t>(columns));
    if (!packed.bias) return false;
    std::fill(packed.bias.get(), packed.bias.get() + columns, 0.0f);
    std::memcpy(packed.bias.get(), bias, static_cast<size_t>(n) * sizeof(float));
  }
  // Panel j (columns j * kLanes on) is [k][kLanes] floats at j * k * kLanes (zeros past n).
  float* out = packed.data.get();
  int64_t panels = columns / kLanes;
  parallel_for(pool, static_cast<size_t>(panels), 1, [&](size_t begin, size_t end) {
    for (size_t panel = begin; panel < end; ++panel) {
      int64_t first_n = static_cast<int64_t>(panel) * kLanes;
      int64_t count = std::max<int64_t>(0, std::min<int64_t>(kLanes, n - first_n));
      float* target = out + first_n * k;
      for (int64_t p = 0; p < k; ++p) {
        float* row = target + p * kLanes;
        for (int64_t j = 0; j < count; ++j) {
          row[j] = w_is_k_by_n ? w[p * n + first_n + j] : w[(first_n + j) * k + p];
        }
        std::fill(row + count, row + kLanes, 0.0f);
      }
    }
  });
  return true;
#else
  (void)pool, (void)w, (void)n, (void)k, (void)w_is_k_by_n, (void)bias, (void)packed;
  return false;
#endif
}

void packed_linear(ThreadPool* pool, std::span<const RowSegment> segments, const PackedWeights& weights,
                   const Activation& activation) {
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
  int64_t n = weights.n;
  int64_t k = weights.k;
  const float* data = weights.data.get();
  const float* bias = weights.bias.get();

  // Row blocks of nearly equal size within each segment (50 rows: 8, 8, 8, 8, 9, 9): a short
  // last block would spend a whole pass over the weight slice on a few rows.
  struct Block {
    const float* a;
    int64_t lda;
    float* c;
    int64_t ldc;
    int rows;
    const float* addend;
  };
  std::vector<Block> blocks;
  int64_t total_rows = 0;
  for (const RowSegment& segment : segments) {
    int64_t count = (segment.m + kRows - 1) / kRows;
    for (int64_t block = 0, row = 0; block < count; ++block) {
      int rows = static_cast<int>((segment.m - row) / (count - block));
      blocks.push_back({segment.a + row * segment.lda, segment.lda, segment.c + row * segment.ldc, segment.ldc, rows,
                        segment.addend ? segment.addend + row * segment.ldc : nullptr});
      row += rows;
    }
    total_rows += segment.m;
  }
  if (blocks.empty()) return;

  // Work items are column slices: each thread computes whole slices, all rows and all of k.
  // The kernel blocks of columns are dealt into a number of slices that is a multiple of the
  // thread count, each at most kSliceN wide, with at least kSlicesPerThread per thread while
  // blocks last. A count up to twice that which deals the blocks out evenly is preferred: a
  // thread left with a wider last slice keeps the other waiting. So 3072 columns (64 blocks of
  // 48) on 2 threads make 16 slices of 4 blocks, not 14 of 4 or 5.
  int64_t block_columns = kPanel;
  int64_t column_blocks = (n + block_columns - 1) / block_columns;
  int64_t threads = pool ? pool->size() : 1;
  int64_t widest = kSliceN / block_columns;
  int64_t items = threads * ((column_blocks + threads * widest - 1) / (threads * widest));
  items = std::max(items, threads * kSlicesPerThread);
  // Enough slices that each one's weights fit slice_bytes() through all of k: one thread with
  // the 3072-deep products of ViT-B/32 would otherwise run 4 slices of 192 columns, each in two
  // halves of k. The count stays a multiple of the thread count. With 640 KiB slices, 16
  // blocks of 3072-deep columns on 2 threads had made 15 slices, one of them twice as wide.
  const int64_t max_slice_bytes = slice_bytes();
  int64_t column_bytes = k * block_columns * static_cast<int64_t>(sizeof(float));
  int64_t fitting = (column_blocks * column_bytes + max_slice_bytes - 1) / max_slice_bytes;
  items = std::min(column_blocks, std::max(items, (fitting + threads - 1) / threads * threads));
  for (int64_t even = items; even <= std::min(column_blocks, 2 * items); even += threads) {
    if (column_blocks % even == 0) {
      items = even;
      break;
    }
  }
  size_t grain = total_rows * n * k < (int64_t{1} << 20) ? static_cast<size_t>(items) : 1;
  parallel_for(pool, static_cast<size_t>(items), grain, [&](size_t begin, size_t end) {
    for (size_t item = begin; item < end; ++item) {
      int64_t first_n = static_cast<int64_t>(item) * column_blocks / items * block_columns;
      int64_t last_n = std::min(n, (static_cast<int64_t>(item) + 1) * column_blocks / items * block_columns);
      // Slices of equal depth whose weights fit in slice_bytes().
      int64_t slice_columns = aligned_columns(last_n - first_n);
      int64_t slices = std::max<int64_t>(1, (k * slice_columns * static_cast<int64_t>(sizeof(float)) + max_slice_bytes - 1) / max_slice_bytes);
      int64_t slice_depth = (k + slices - 1) / slices;
      for (int64_t first_k = 0; first_k < k; first_k += slice_depth) {
        int64_t depth = std::min(slice_depth, k - first_k);
        bool last_slice = first_k + depth == k;
        for (const Block& block : blocks) {
          for (int64_t group = first_n; group < last_n; group += kPanel) {
            int count = static_cast<int>(std::min<int64_t>(kPanel, n - group));
            run_block<kRows>(block.rows, (count + kLanes - 1) / kLanes, depth, block.a + first_k, block.lda,
                             data + group * k + first_k * kLanes, k * kLanes, first_k == 0,
                             bias ? bias + group : nullptr, block.c + group, block.ldc, count);
          }
          // The block's rows of this column slice are final: apply the activation and add the
          // addend while they are in cache, a whole slice row at a time (long loops vectorize
          // better).
          if (last_slice && (activation.kind != Activation::Kind::kNone || block.addend != nullptr)) {
            size_t count = static_cast<size_t>(last_n - first_n);
            for (int r = 0; r < block.rows; ++r) {
              float* row = block.c + r * block.ldc + first_n;
              apply_activation(activation, row, count);
              if (block.addend != nullptr) add_row(row, block.addend + r * block.ldc + first_n, count);
            }
          }
        }
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
