// One attention head computed in one pass, for the XNNPACK backend's fused attention
// (Graph::fuse_attention): scores = q * k^T, times a scale, softmax over each row, then times v.
//
// Why: the separate nodes run two OpenBLAS products per head through strided views (for
// ViT-B/32, 50 x 64 by 64 x 50 with a gathered key, then 50 x 50 by 50 x 64). Between them, a
// Multiply and a Softmax pass over the scores in memory. Here the scores of a few rows stay
// in registers from the first product to the softmax, and the second product reads the value
// rows where they are. In batches of 8 ViT-B/32 calls the attention took 10-15 % less time
// (2026-12-05, 2-core Xeon). Most of its time goes to bringing the operands into cache.
#pragma once

#include <cstdint>

namespace ei::xnn {

// Keys and value columns that attention_head() takes: at most four 16-float vectors.
constexpr int64_t kAttentionMaxKeys = 64;
constexpr int64_t kAttentionMaxValueColumns = 64;
// Keys that attention_transpose_keys() transposes at a time.
constexpr int64_t kAttentionKeyBlock = 16;

// Returns true when this build has the fused kernel (AVX-512). Without it the graph runs the
// separate nodes.
bool attention_kernel_available();

// Returns the floats of transposed keys that attention_head() reads for a query and key size dk.
int64_t attention_keys_floats(int64_t dk);

// Returns the floats of scratch memory that attention_head() needs besides the transposed keys.
int64_t attention_scratch_floats();

// An operand seen with strides: element (i, j) is at data[i * rows + j * columns].
struct AttentionOperand {
  const float* data;
  int64_t rows;
  int64_t columns;
};

// Writes keys j0 to j0 + kAttentionKeyBlock - 1 of k (rows of [n, dk]) transposed into keys_t
// (attention_keys_floats(dk) floats), the layout that attention_head() reads. Keys at n or past
// it count as zero. Calls for j0 = 0, kAttentionKeyBlock, ... below n fill every column that
// attention_head() uses, because it ignores the columns past n.
void attention_transpose_keys(int64_t j0, int64_t n, int64_t dk, AttentionOperand k, float* keys_t);

// Writes o = softmax(scale * q k^T) v for one head, row by row. q is [m, dk], keys_t is k
// ([n, dk]) as attention_transpose_keys() writes it, v is [n, dv] with contiguous rows and o is
// [m, dv] with row stride o_row_stride. Requires 0 < n <= kAttentionMaxKeys and
// dv <= kAttentionMaxValueColumns.
//
// Each score is one sequential sum over dk, and each output one sequential sum over the keys.
// Each softmax row is computed as the Softmax node computes it (the same exponential, a
// sequential sum, then a multiply by its reciprocal), except that subnormal numbers count as
// zero (see attention.cpp).
void attention_head(int64_t m, int64_t n, int64_t dk, int64_t dv, AttentionOperand q, const float* keys_t, float scale,
                    AttentionOperand v, float* o, int64_t o_row_stride, float* scratch);

}  // namespace ei::xnn
