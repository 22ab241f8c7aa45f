// Matrix products for the XNNPACK backend, on the platform BLAS: OpenBLAS on Linux,
// Accelerate on macOS. Matrices are row-major float32.
//
// The BLAS runs single-threaded, and the products are split by output columns across the
// program's thread pool. Each output element is then computed by one BLAS call over the whole
// inner dimension. A lone call uses every core, while concurrent calls each run on their own
// thread (see ThreadPool::parallel_for).
#pragma once

#include <cstdint>

#include "runtime/thread_pool.h"

namespace ei::xnn {

// c[m, n] (row stride ldc) = a[m, k] (row stride lda) * b + (c if accumulate), where b is
// [k, n] with row stride ldb, or [n, k] when b_transposed.
void gemm(ThreadPool* pool, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
          int64_t ldb, bool b_transposed, float* c, int64_t ldc, bool accumulate = false);

// c[m, n] = a[m, k] * w^T + bias for a linear layer's weight w [n, k], or a * w when w is
// [k, n] (w_is_k_by_n). bias may be null.
void linear(ThreadPool* pool, int64_t m, int64_t n, int64_t k, const float* a, const float* w, bool w_is_k_by_n,
            const float* bias, float* c);

// Makes the BLAS library itself single-threaded (OpenBLAS); the pool provides parallelism.
void use_single_threaded_blas();

}  // namespace ei::xnn
