// Linear layers with weights packed once at load, for the XNNPACK backend's FullyConnected
// and Conv2d nodes.
//
// Why not the BLAS for these: with 50 tokens per image (CLIP ViT-B/32) a linear layer is a
// product of a small activation by a large weight matrix, and OpenBLAS repacks the whole
// weight on every call. Profiling the ViT-B/32 program showed that copy taking as long as the
// arithmetic (37 % and 41 % of the time), because every image streams the 335 MB of weights
// through memory twice more. Packing once at load leaves one pass over the weights per image.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "backends/vector_math.h"
#include "runtime/thread_pool.h"

namespace ei::xnn {

// Columns per kernel block: three vector registers of floats with AVX-512 (48), two with AVX2
// (16), or 0 when this build has no packed kernel and linear layers use the BLAS.
int packed_panel_width();

// The rate of fused multiply-adds one thread reaches with this build's vectors, in GFLOP/s (two
// per lane), measured by running independent chains for `seconds`; 0 without a packed kernel.
// The benchmark reports products as a fraction of it.
double fma_peak_gflops(double seconds);

// A weight matrix for c = a * w^T (w is [n, k]), packed for packed_linear(): in panels of one
// vector's width of output columns, each panel [k][width] floats (zeros past n). The bias,
// when present, is padded the same way.
struct PackedWeights {
  int64_t n = 0;
  int64_t k = 0;
  std::shared_ptr<float[]> data;
  std::shared_ptr<float[]> bias;
};

// Packs w ([n, k] row-major, or [k, n] when w_is_k_by_n) and an optional bias of n values.
// Returns false when the build has no packed kernel or memory is short.
bool pack_weights(ThreadPool* pool, const float* w, int64_t n, int64_t k, bool w_is_k_by_n, const float* bias,
                  PackedWeights& packed);

// Rows of one product: c[m, n] (row stride ldc) = a[m, k] (row stride lda) * w^T + bias, then
// the activation, then + addend[m, n] (row stride ldc) when addend is set.
struct RowSegment {
  int64_t m;
  const float* a;
  int64_t lda;
  float* c;
  int64_t ldc;
  const float* addend = nullptr;
};

// Computes several products with the same weights in one pass over them, for calls batched
// together, and applies `activation` to each output while it is still in cache. Each output
// row is computed exactly as it would be alone.
void packed_linear(ThreadPool* pool, std::span<const RowSegment> segments, const PackedWeights& weights,
                   const Activation& activation = {});

// c[m, n] (row stride ldc) = a[m, k] (row stride lda) * w^T + bias. Each output element is
// one sequential sum over k, so results do not depend on the thread count.
void packed_linear(ThreadPool* pool, int64_t m, const float* a, int64_t lda, const PackedWeights& weights, float* c,
                   int64_t ldc, const Activation& activation = {});

}  // namespace ei::xnn
