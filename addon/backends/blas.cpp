#include "backends/blas.h"

#include <algorithm>
#include <cstring>

#if defined(EI_USE_ACCELERATE)
#include <Accelerate/Accelerate.h>
#else
#include <cblas.h>
#endif

namespace ei::xnn {

void gemm_strided(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
                  bool b_transposed, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    for (int64_t i = 0; i < m; ++i) std::fill(c + i * ldc, c + i * ldc + n, 0.0f);
    return;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, b_transposed ? CblasTrans : CblasNoTrans, static_cast<int>(m),
              static_cast<int>(n), static_cast<int>(k), 1.0f, a, static_cast<int>(lda), b, static_cast<int>(ldb), 0.0f,
              c, static_cast<int>(ldc));
}

void gemm(int64_t m, int64_t n, int64_t k, const float* a, bool a_transposed, const float* b, bool b_transposed,
          float* c) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    std::fill(c, c + m * n, 0.0f);
    return;
  }
  cblas_sgemm(CblasRowMajor, a_transposed ? CblasTrans : CblasNoTrans, b_transposed ? CblasTrans : CblasNoTrans,
              static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), 1.0f, a,
              static_cast<int>(a_transposed ? m : k), b, static_cast<int>(b_transposed ? k : n), 0.0f, c,
              static_cast<int>(n));
}

void gemm_with_bias(int64_t m, int64_t n, int64_t k, const float* a, const float* w, bool w_is_k_by_n,
                    const float* bias, float* c) {
  if (m == 0 || n == 0) return;
  float beta = 0.0f;
  if (bias != nullptr) {
    for (int64_t i = 0; i < m; ++i) std::memcpy(c + i * n, bias, static_cast<size_t>(n) * sizeof(float));
    beta = 1.0f;
  } else if (k == 0) {
    std::fill(c, c + m * n, 0.0f);
  }
  if (k == 0) return;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, w_is_k_by_n ? CblasNoTrans : CblasTrans, static_cast<int>(m),
              static_cast<int>(n), static_cast<int>(k), 1.0f, a, static_cast<int>(k), w,
              static_cast<int>(w_is_k_by_n ? n : k), beta, c, static_cast<int>(n));
}

#if !defined(EI_USE_ACCELERATE)
extern "C" void openblas_set_num_threads(int);
#endif

void set_blas_threads(int threads) {
#if !defined(EI_USE_ACCELERATE)
  if (threads > 0) openblas_set_num_threads(threads);
#else
  (void)threads;
#endif
}

}  // namespace ei::xnn
