// Matrix products for the XNNPACK backend, on the platform BLAS: OpenBLAS on Linux,
// Accelerate on macOS. Matrices are row-major float32.
#pragma once

#include <cstdint>

namespace ei::xnn {

// c[m, n] = a[m, k] * b, where b is [k, n], or [n, k] when b_transposed.
void gemm(int64_t m, int64_t n, int64_t k, const float* a, bool a_transposed, const float* b, bool b_transposed,
          float* c);
// c[m, n] = a[m, k] * w + bias, where w is [n, k] (a linear layer's weight), or [k, n] when
// w_is_k_by_n. bias may be null.
void gemm_with_bias(int64_t m, int64_t n, int64_t k, const float* a, const float* w, bool w_is_k_by_n,
                    const float* bias, float* c);
// The general form with leading dimensions: c[m, n] (row stride ldc) = a[m, k] * b^T or b.
void gemm_strided(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
                  bool b_transposed, float* c, int64_t ldc);
// Sets the BLAS library's own thread count (OpenBLAS); ignored elsewhere.
void set_blas_threads(int threads);

}  // namespace ei::xnn
