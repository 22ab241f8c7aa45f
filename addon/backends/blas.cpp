#include "backends/blas.h"

#include <algorithm>
#include <cstring>
#include <mutex>

#if defined(EI_USE_ACCELERATE)
#include <Accelerate/Accelerate.h>
#else
#include <cblas.h>
extern "C" void openblas_set_num_threads(int);
#endif

namespace ei::xnn {

namespace {

// Columns per chunk are a multiple of this, so chunk edges fall on whole SIMD blocks.
constexpr int64_t kColumnBlock = 64;
// Below this many multiply-adds a product runs on the calling thread alone.
constexpr int64_t kParallelWork = int64_t{1} << 20;

void sgemm(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
           bool b_transposed, float* c, int64_t ldc, float beta) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, b_transposed ? CblasTrans : CblasNoTrans, static_cast<int>(m),
              static_cast<int>(n), static_cast<int>(k), 1.0f, a, static_cast<int>(lda), b, static_cast<int>(ldb), beta,
              c, static_cast<int>(ldc));
}

}  // namespace

void gemm(ThreadPool* pool, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
          int64_t ldb, bool b_transposed, float* c, int64_t ldc, bool accumulate) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    if (!accumulate) {
      for (int64_t i = 0; i < m; ++i) std::fill(c + i * ldc, c + i * ldc + n, 0.0f);
    }
    return;
  }
  float beta = accumulate ? 1.0f : 0.0f;
  int64_t blocks = (n + kColumnBlock - 1) / kColumnBlock;
  size_t grain = m * n * k < kParallelWork ? static_cast<size_t>(blocks) : 1;
  parallel_for(pool, static_cast<size_t>(blocks), grain, [&](size_t begin, size_t end) {
    int64_t first = static_cast<int64_t>(begin) * kColumnBlock;
    int64_t last = std::min(n, static_cast<int64_t>(end) * kColumnBlock);
    const float* b_part = b_transposed ? b + first * ldb : b + first;
    sgemm(m, last - first, k, a, lda, b_part, ldb, b_transposed, c + first, ldc, beta);
  });
}

void linear(ThreadPool* pool, int64_t m, int64_t n, int64_t k, const float* a, const float* w, bool w_is_k_by_n,
            const float* bias, float* c) {
  if (m == 0 || n == 0) return;
  if (bias != nullptr) {
    for (int64_t i = 0; i < m; ++i) std::memcpy(c + i * n, bias, static_cast<size_t>(n) * sizeof(float));
  }
  gemm(pool, m, n, k, a, k, w, w_is_k_by_n ? n : k, !w_is_k_by_n, c, n, bias != nullptr);
}

void use_single_threaded_blas() {
#if !defined(EI_USE_ACCELERATE)
  static std::once_flag once;
  std::call_once(once, [] { openblas_set_num_threads(1); });
#endif
}

}  // namespace ei::xnn
