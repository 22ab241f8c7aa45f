// Execution of XnnpackBackend graphs: shape inference for the call's input shapes, a
// lifetime-based memory plan for intermediate values, and float32 implementations of each
// node type with XNNPACK's semantics (NHWC convolutions and pooling, numpy broadcasting,
// a fused output clamp on every node).
#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>

#if defined(__SSE__)
#include <immintrin.h>
#endif

#include "backends/attention.h"
#include "backends/blas.h"
#include "backends/vector_math.h"
#include "backends/xnnpack_graph.h"

namespace ei::xnn {

namespace {

Status node_error(size_t index, const Node& node, const std::string& message) {
  return Status(ErrorCode::kDelegateFailed,
                "XNNPACK node " + std::to_string(index) + " (" + node_kind_name(node.kind) + "): " + message);
}

std::string dims_string(const Dims& dims) {
  std::string text = "[";
  for (size_t i = 0; i < dims.size(); ++i) text += (i ? ", " : "") + std::to_string(dims[i]);
  return text + "]";
}

int64_t numel(const Dims& dims) {
  int64_t count = 1;
  for (int64_t d : dims) count *= d;
  return count;
}

// numpy broadcasting of two shapes aligned at the trailing dimension.
bool broadcast_shape(const Dims& a, const Dims& b, Dims& out) {
  size_t rank = std::max(a.size(), b.size());
  out.assign(rank, 1);
  for (size_t i = 0; i < rank; ++i) {
    int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    if (da != db && da != 1 && db != 1) return false;
    out[i] = da == 1 ? db : da;
  }
  return true;
}

// Output size of a convolution or pooling window along one axis; -1 when the window does not fit.
int64_t window_output(int64_t input, int64_t pad_before, int64_t pad_after, int64_t kernel, int64_t stride,
                      int64_t dilation) {
  int64_t effective = (kernel - 1) * dilation + 1;
  int64_t padded = input + pad_before + pad_after;
  if (stride <= 0 || padded < effective) return -1;
  return (padded - effective) / stride + 1;
}

inline float clamp_value(float value, float low, float high) { return std::min(std::max(value, low), high); }

void clamp_range(float* data, size_t count, float low, float high) {
  if (low == -std::numeric_limits<float>::infinity() && high == std::numeric_limits<float>::infinity()) return;
  for (size_t i = 0; i < count; ++i) data[i] = clamp_value(data[i], low, high);
}

// Strides in elements of a row-major shape.
Dims row_major_strides(const Dims& dims) {
  Dims strides(dims.size(), 1);
  for (size_t i = dims.size(); i-- > 1;) strides[i - 1] = strides[i] * dims[i];
  return strides;
}

template <typename Op>
void binary_broadcast(const float* a, const Dims& a_dims, const float* b, const Dims& b_dims, float* out,
                      const Dims& out_dims, Op op, ThreadPool* pool) {
  size_t count = static_cast<size_t>(numel(out_dims));
  size_t na = static_cast<size_t>(numel(a_dims));
  size_t nb = static_cast<size_t>(numel(b_dims));
  if (na == count && nb == count) {
    parallel_for(pool, count, 1 << 14, [&](size_t begin, size_t end) {
      for (size_t i = begin; i < end; ++i) out[i] = op(a[i], b[i]);
    });
    return;
  }
  if (nb == 1) {
    float value = b[0];
    parallel_for(pool, count, 1 << 14, [&](size_t begin, size_t end) {
      for (size_t i = begin; i < end; ++i) out[i] = op(a[i], value);
    });
    return;
  }
  if (na == 1) {
    float value = a[0];
    parallel_for(pool, count, 1 << 14, [&](size_t begin, size_t end) {
      for (size_t i = begin; i < end; ++i) out[i] = op(value, b[i]);
    });
    return;
  }
  // b repeats along the leading dimensions (a bias row, for example).
  if (na == count && count % nb == 0) {
    bool suffix = true;
    for (size_t i = 0; i < b_dims.size(); ++i) {
      if (b_dims[b_dims.size() - 1 - i] != out_dims[out_dims.size() - 1 - i]) suffix = false;
    }
    if (suffix) {
      size_t rows = count / nb;
      parallel_for(pool, rows, 16, [&](size_t begin, size_t end) {
        for (size_t r = begin; r < end; ++r) {
          for (size_t j = 0; j < nb; ++j) out[r * nb + j] = op(a[r * nb + j], b[j]);
        }
      });
      return;
    }
  }
  // General case. Each input gets a stride per output dimension (0 where it broadcasts), and
  // neighbouring dimensions that both inputs step through alike merge into one. The innermost
  // merged dimension then runs as a plain loop over rows of the output, split across the pool
  // (a [1, 3, 224, 224] image minus a [1, 3, 1, 1] mean is 3 rows of 50,176).
  size_t rank = out_dims.size();
  Dims a_strides = row_major_strides(a_dims), b_strides = row_major_strides(b_dims);
  Dims sizes, sa, sb;
  for (size_t i = 0; i < rank; ++i) {
    size_t offset_a = rank - a_dims.size(), offset_b = rank - b_dims.size();
    int64_t stride_a = i >= offset_a && a_dims[i - offset_a] != 1 ? a_strides[i - offset_a] : 0;
    int64_t stride_b = i >= offset_b && b_dims[i - offset_b] != 1 ? b_strides[i - offset_b] : 0;
    if (out_dims[i] == 1) continue;
    if (!sizes.empty() && sa.back() == stride_a * out_dims[i] && sb.back() == stride_b * out_dims[i]) {
      sizes.back() *= out_dims[i];
      sa.back() = stride_a;
      sb.back() = stride_b;
    } else {
      sizes.push_back(out_dims[i]);
      sa.push_back(stride_a);
      sb.push_back(stride_b);
    }
  }
  if (sizes.empty()) {
    if (count > 0) out[0] = op(a[0], b[0]);
    return;
  }
  int64_t inner = sizes.back();
  int64_t inner_a = sa.back(), inner_b = sb.back();
  size_t outer_rank = sizes.size() - 1;
  size_t rows = count / static_cast<size_t>(inner);
  parallel_for(pool, rows, std::max<size_t>(1, static_cast<size_t>((1 << 14) / inner)), [&](size_t begin, size_t end) {
    for (size_t row = begin; row < end; ++row) {
      int64_t ia = 0, ib = 0;
      for (size_t d = outer_rank, rest = row; d-- > 0;) {
        int64_t position = static_cast<int64_t>(rest % static_cast<size_t>(sizes[d]));
        rest /= static_cast<size_t>(sizes[d]);
        ia += position * sa[d];
        ib += position * sb[d];
      }
      float* target = out + static_cast<int64_t>(row) * inner;
      const float* x = a + ia;
      const float* y = b + ib;
      if (inner_a == 1 && inner_b == 1) {
        for (int64_t j = 0; j < inner; ++j) target[j] = op(x[j], y[j]);
      } else if (inner_a == 1 && inner_b == 0) {
        float value = y[0];
        for (int64_t j = 0; j < inner; ++j) target[j] = op(x[j], value);
      } else if (inner_a == 0 && inner_b == 1) {
        float value = x[0];
        for (int64_t j = 0; j < inner; ++j) target[j] = op(value, y[j]);
      } else {
        for (int64_t j = 0; j < inner; ++j) target[j] = op(x[j * inner_a], y[j * inner_b]);
      }
    }
  });
}

template <typename Op>
void unary_map(const float* in, float* out, size_t count, Op op, ThreadPool* pool) {
  parallel_for(pool, count, 1 << 14, [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) out[i] = op(in[i]);
  });
}

StridedView contiguous_view(const Dims& dims) { return {dims, row_major_strides(dims)}; }

// Reshapes `view` to `new_dims` (same element count) as a reshape of its tensor would, and
// returns false when strides cannot express that. They can when each run of dimensions that
// is one contiguous block in memory splits into whole new dimensions.
bool reshape_view(StridedView& view, const Dims& new_dims) {
  if (numel(view.dims) != numel(new_dims) || numel(new_dims) == 0) return false;
  std::vector<std::pair<int64_t, int64_t>> old;  // (size, stride) without dimensions of size 1
  for (size_t d = 0; d < view.dims.size(); ++d) {
    if (view.dims[d] != 1) old.emplace_back(view.dims[d], view.strides[d]);
  }
  Dims strides(new_dims.size(), 1);
  size_t n = 0;
  for (size_t o = 0; o < old.size();) {
    size_t end = o;
    int64_t size = old[o].first;
    while (end + 1 < old.size() && old[end].second == old[end + 1].first * old[end + 1].second) {
      ++end;
      size *= old[end].first;
    }
    int64_t covered = 1;
    size_t first = n;
    while (n < new_dims.size() && covered < size) covered *= new_dims[n++];
    if (covered != size) return false;
    int64_t stride = old[end].second;
    for (size_t d = n; d-- > first;) {
      strides[d] = stride;
      stride *= new_dims[d];
    }
    o = end + 1;
  }
  for (; n < new_dims.size(); ++n) {
    if (new_dims[n] != 1) return false;
  }
  view = {new_dims, std::move(strides)};
  return true;
}

// Returns the leading dimension of a view's last two dimensions as a row-major BLAS matrix,
// or 0 when its rows are not contiguous. An empty matrix or a single row accepts any stride.
int64_t matrix_stride(const StridedView& view) {
  size_t rank = view.dims.size();
  if (rank < 2) return 0;
  int64_t rows = view.dims[rank - 2], cols = view.dims[rank - 1];
  if (rows == 0 || cols == 0) return std::max<int64_t>(cols, 1);
  if (cols != 1 && view.strides[rank - 1] != 1) return 0;
  if (rows == 1) return cols;
  int64_t ld = view.strides[rank - 2];
  return ld >= cols ? ld : 0;
}

// Writes the im2col rows of convolution group g of one NHWC image (dims `input`, output dims
// `out_dims`): one row of [kh, kw, group_in] per output pixel, zeros where the window covers padding.
void im2col(const Node& node, const Dims& input, const Dims& out_dims, const float* image, int64_t g, float* columns,
            ThreadPool* pool) {
  int64_t ih = input[1], iw = input[2], channels = input[3];
  int64_t ow = out_dims[2];
  int64_t kh = node.kernel_h, kw = node.kernel_w, group_in = node.group_in;
  int64_t patch = kh * kw * group_in;
  parallel_for(pool, static_cast<size_t>(out_dims[1] * ow), 64, [&](size_t begin, size_t end) {
    for (size_t p = begin; p < end; ++p) {
      int64_t y = static_cast<int64_t>(p) / ow, x = static_cast<int64_t>(p) % ow;
      float* row = columns + static_cast<int64_t>(p) * patch;
      for (int64_t ky = 0; ky < kh; ++ky) {
        int64_t sy = y * node.stride_h + ky * node.dilation_h - node.pad_top;
        for (int64_t kx = 0; kx < kw; ++kx) {
          int64_t sx = x * node.stride_w + kx * node.dilation_w - node.pad_left;
          float* cell = row + (ky * kw + kx) * group_in;
          if (sy < 0 || sy >= ih || sx < 0 || sx >= iw) {
            std::fill(cell, cell + group_in, 0.0f);
          } else {
            std::memcpy(cell, image + (sy * iw + sx) * channels + g * group_in, static_cast<size_t>(group_in) * sizeof(float));
          }
        }
      }
    }
  });
}

// Rows that softmax_rows() handles side by side.
constexpr size_t kSoftmaxRows = 8;

// Softmax over each of `rows` (at most kSoftmaxRows) rows of `inner` values. Each row's sum
// is one sequential sum in order of j, as a loop over one row would add. The rows' sums run
// side by side, so the adds of different rows overlap instead of each waiting for the last.
// The exponentials are a loop of their own, which compilers vectorize.
void softmax_rows(const float* x, float* y, size_t rows, int64_t inner) {
  float max_values[kSoftmaxRows], sums[kSoftmaxRows];
  // Adds or maxes each row's values into its own accumulator, in order of j. With a full set
  // of rows, the inner loop over rows has no dependency from one step to the next.
  auto reduce = [&](const float* data, float* totals, auto op) {
    if (rows == kSoftmaxRows) {
      for (int64_t j = 0; j < inner; ++j) {
        for (size_t r = 0; r < kSoftmaxRows; ++r) totals[r] = op(totals[r], data[static_cast<int64_t>(r) * inner + j]);
      }
    } else {
      for (size_t r = 0; r < rows; ++r) {
        for (int64_t j = 0; j < inner; ++j) totals[r] = op(totals[r], data[static_cast<int64_t>(r) * inner + j]);
      }
    }
  };
  std::fill(max_values, max_values + kSoftmaxRows, -std::numeric_limits<float>::infinity());
  reduce(x, max_values, [](float a, float b) { return std::max(a, b); });
  for (size_t r = 0; r < rows; ++r) {
    const float* row = x + static_cast<int64_t>(r) * inner;
    float* target = y + static_cast<int64_t>(r) * inner;
    float max_value = max_values[r];
    for (int64_t j = 0; j < inner; ++j) target[j] = exp_fast(row[j] - max_value);
  }
  std::fill(sums, sums + kSoftmaxRows, 0.0f);
  reduce(y, sums, [](float a, float b) { return a + b; });
  for (size_t r = 0; r < rows; ++r) {
    float scale = 1.0f / sums[r];
    float* target = y + static_cast<int64_t>(r) * inner;
    for (int64_t j = 0; j < inner; ++j) target[j] *= scale;
  }
}

// Copies a strided block into row-major `out`: out[i] = in[sum(index_d * in_strides_d)] over
// `dims`.
//
// Dimensions of size 1 are dropped, and neighbours that are contiguous in the input too are
// merged, so an NCHW to NHWC transpose becomes a 2-D one. Rows whose last dimension is
// contiguous in the input are copied whole. Otherwise, when another dimension q is contiguous
// in the input, the copy runs in tiles of kTile x kTile over (q, last), so that both the reads
// and the writes use whole cache lines. An attention's key transpose and the input layout
// change before a convolution are copied this way.
void gather_strided(const float* in, const Dims& dims, const Dims& in_strides, float* out, ThreadPool* pool) {
  if (numel(dims) == 0) return;
  Dims shape, strides;  // simplified, outermost first
  for (size_t d = 0; d < dims.size(); ++d) {
    if (dims[d] == 1) continue;
    if (!shape.empty() && strides.back() == in_strides[d] * dims[d]) {
      shape.back() *= dims[d];
      strides.back() = in_strides[d];
    } else {
      shape.push_back(dims[d]);
      strides.push_back(in_strides[d]);
    }
  }
  if (shape.empty()) {
    out[0] = in[0];
    return;
  }
  size_t rank = shape.size();
  int64_t inner = shape[rank - 1];
  int64_t inner_stride = strides[rank - 1];
  if (inner_stride == 1) {
    size_t rows = static_cast<size_t>(numel(shape) / inner);
    size_t grain = std::max<size_t>(1, static_cast<size_t>((1 << 14) / inner));
    parallel_for(pool, rows, grain, [&](size_t begin, size_t end) {
      // Unravel the first row's index once, then step through the rest like an odometer.
      Dims index(rank - 1, 0);
      int64_t rest = static_cast<int64_t>(begin);
      int64_t base = 0;
      for (size_t d = rank - 1; d-- > 0;) {
        index[d] = rest % shape[d];
        rest /= shape[d];
        base += index[d] * strides[d];
      }
      for (size_t row = begin; row < end; ++row) {
        std::memcpy(out + static_cast<int64_t>(row) * inner, in + base, static_cast<size_t>(inner) * sizeof(float));
        for (size_t d = rank - 1; d-- > 0;) {
          base += strides[d];
          if (++index[d] < shape[d]) break;
          base -= index[d] * strides[d];
          index[d] = 0;
        }
      }
    });
    return;
  }

  int64_t q = -1;
  for (size_t d = 0; d + 1 < rank; ++d) {
    if (strides[d] == 1) q = static_cast<int64_t>(d);
  }
  if (q < 0) {
    size_t rows = static_cast<size_t>(numel(shape) / inner);
    parallel_for(pool, rows, std::max<size_t>(1, static_cast<size_t>((1 << 14) / inner)), [&](size_t begin, size_t end) {
      for (size_t row = begin; row < end; ++row) {
        int64_t base = 0, rest = static_cast<int64_t>(row);
        for (size_t d = rank - 1; d-- > 0;) {
          base += (rest % shape[d]) * strides[d];
          rest /= shape[d];
        }
        float* target = out + static_cast<int64_t>(row) * inner;
        for (int64_t j = 0; j < inner; ++j) target[j] = in[base + j * inner_stride];
      }
    });
    return;
  }

  // Tiles over (q, last). Output strides: row-major over the simplified shape.
  constexpr int64_t kTile = 16;
  Dims out_strides = row_major_strides(shape);
  int64_t q_size = shape[static_cast<size_t>(q)];
  int64_t q_out_stride = out_strides[static_cast<size_t>(q)];
  int64_t q_blocks = (q_size + kTile - 1) / kTile;
  int64_t outer = numel(shape) / inner / q_size;
  parallel_for(pool, static_cast<size_t>(outer * q_blocks), 1, [&](size_t begin, size_t end) {
    for (size_t item = begin; item < end; ++item) {
      int64_t o = static_cast<int64_t>(item) / q_blocks;
      int64_t i0 = static_cast<int64_t>(item) % q_blocks * kTile;
      int64_t i1 = std::min(q_size, i0 + kTile);
      // The outer index o counts the dimensions other than q and the last. Find its offsets.
      int64_t in_base = 0, out_base = 0, rest = o;
      for (size_t d = rank - 1; d-- > 0;) {
        if (static_cast<int64_t>(d) == q) continue;
        int64_t coordinate = rest % shape[d];
        rest /= shape[d];
        in_base += coordinate * strides[d];
        out_base += coordinate * out_strides[d];
      }
      for (int64_t j0 = 0; j0 < inner; j0 += kTile) {
        int64_t j1 = std::min(inner, j0 + kTile);
        for (int64_t i = i0; i < i1; ++i) {
          const float* source = in + in_base + i;
          float* target = out + out_base + i * q_out_stride;
          for (int64_t j = j0; j < j1; ++j) target[j] = source[j * inner_stride];
        }
      }
    }
  });
}

}  // namespace

Status Graph::infer_shapes(CallState& state) const {
  for (size_t n = 0; n < nodes_.size(); ++n) {
    const Node& node = nodes_[n];
    auto in = [&](size_t i) -> const Dims& { return state.dims[node.inputs[i]]; };
    Dims out;
    auto fail = [&](const std::string& message) { return node_error(n, node, message); };

    switch (node.kind) {
      case NodeKind::kAdd:
      case NodeKind::kSubtract:
      case NodeKind::kMultiply:
      case NodeKind::kDivide:
      case NodeKind::kMinimum:
      case NodeKind::kMaximum:
      case NodeKind::kPRelu:
        if (!broadcast_shape(in(0), in(1), out)) {
          return fail("shapes " + dims_string(in(0)) + " and " + dims_string(in(1)) + " do not broadcast");
        }
        break;
      case NodeKind::kFullyConnected: {
        const Dims& input = in(0);
        const Dims& filter = in(1);
        if (filter.size() != 2 || input.empty()) return fail("needs a 2-D filter and an input of rank 1 or more");
        bool transposed = (node.flags & kFlagTransposeWeights) != 0;
        int64_t in_channels = transposed ? filter[0] : filter[1];
        int64_t out_channels = transposed ? filter[1] : filter[0];
        if (input.back() != in_channels) {
          return fail("input " + dims_string(input) + " does not end in the filter's " + std::to_string(in_channels) +
                      " input channels");
        }
        if (node.inputs[2] != kInvalidId && numel(in(2)) != out_channels) {
          return fail("bias has " + std::to_string(numel(in(2))) + " elements, expected " + std::to_string(out_channels));
        }
        out = input;
        out.back() = out_channels;
        break;
      }
      case NodeKind::kBatchMatrixMultiply: {
        const Dims& a = in(0);
        const Dims& b = in(1);
        if (a.size() < 2 || b.size() < 2) return fail("inputs need rank 2 or more");
        bool transposed = (node.flags & kFlagTransposeWeights) != 0;
        int64_t k_b = transposed ? b[b.size() - 1] : b[b.size() - 2];
        int64_t n_b = transposed ? b[b.size() - 2] : b[b.size() - 1];
        if (a.back() != k_b) return fail("inner dimensions of " + dims_string(a) + " and " + dims_string(b) + " differ");
        Dims batch_a(a.begin(), a.end() - 2), batch_b(b.begin(), b.end() - 2);
        if (!broadcast_shape(batch_a, batch_b, out)) return fail("batch dimensions do not broadcast");
        out.push_back(a[a.size() - 2]);
        out.push_back(n_b);
        break;
      }
      case NodeKind::kConv2d:
      case NodeKind::kDepthwiseConv2d:
      case NodeKind::kConvTranspose2d: {
        const Dims& input = in(0);
        const Dims& filter = in(1);
        if (input.size() != 4 || filter.size() != 4) return fail("needs a 4-D NHWC input and a 4-D filter");
        if ((node.flags & kFlagTensorflowSamePadding) != 0) return fail("TensorFlow SAME padding is not supported");
        if (node.groups == 0 || node.group_in == 0 || node.group_out == 0 || node.stride_h == 0 ||
            node.stride_w == 0 || node.dilation_h == 0 || node.dilation_w == 0) {
          return fail("groups, channels, strides and dilations must be positive");
        }
        int64_t channels = static_cast<int64_t>(node.groups) * node.group_in;
        int64_t out_channels = static_cast<int64_t>(node.groups) * node.group_out;
        if (input[3] != channels) return fail("input has " + std::to_string(input[3]) + " channels, expected " + std::to_string(channels));
        Dims expected_filter = node.kind == NodeKind::kDepthwiseConv2d
                                   ? Dims{1, node.kernel_h, node.kernel_w, out_channels}
                                   : Dims{out_channels, node.kernel_h, node.kernel_w, node.group_in};
        if (filter != expected_filter) {
          return fail("filter is " + dims_string(filter) + ", expected " + dims_string(expected_filter));
        }
        if (node.inputs[2] != kInvalidId && numel(in(2)) != out_channels) return fail("bias size does not match");
        int64_t oh, ow;
        if (node.kind == NodeKind::kConvTranspose2d) {
          oh = (input[1] - 1) * node.stride_h + (int64_t{node.kernel_h} - 1) * node.dilation_h + 1 - node.pad_top -
               node.pad_bottom + node.adjust_h;
          ow = (input[2] - 1) * node.stride_w + (int64_t{node.kernel_w} - 1) * node.dilation_w + 1 - node.pad_left -
               node.pad_right + node.adjust_w;
        } else {
          oh = window_output(input[1], node.pad_top, node.pad_bottom, node.kernel_h, node.stride_h, node.dilation_h);
          ow = window_output(input[2], node.pad_left, node.pad_right, node.kernel_w, node.stride_w, node.dilation_w);
        }
        if (oh <= 0 || ow <= 0) return fail("the kernel does not fit the " + dims_string(input) + " input");
        out = {input[0], oh, ow, out_channels};
        break;
      }
      case NodeKind::kAvgPooling2d:
      case NodeKind::kMaxPooling2d:
      case NodeKind::kArgMaxPooling2d: {
        const Dims& input = in(0);
        if (input.size() != 4) return fail("needs a 4-D NHWC input");
        if ((node.flags & kFlagTensorflowSamePadding) != 0) return fail("TensorFlow SAME padding is not supported");
        uint32_t dilation_h = node.dilation_h == 0 ? 1 : node.dilation_h;
        uint32_t dilation_w = node.dilation_w == 0 ? 1 : node.dilation_w;
        if (node.kernel_h == 0 || node.kernel_w == 0) return fail("pooling size must be positive");
        int64_t oh = window_output(input[1], node.pad_top, node.pad_bottom, node.kernel_h, node.stride_h, dilation_h);
        int64_t ow = window_output(input[2], node.pad_left, node.pad_right, node.kernel_w, node.stride_w, dilation_w);
        if (oh <= 0 || ow <= 0) return fail("the pooling window does not fit the " + dims_string(input) + " input");
        out = {input[0], oh, ow, input[3]};
        if (node.kind == NodeKind::kArgMaxPooling2d) state.dims[node.outputs[1]] = out;
        break;
      }
      case NodeKind::kGlobalAvgPooling2d: {
        const Dims& input = in(0);
        if (input.size() < 3) return fail("needs an input of rank 3 or more");
        out = input;
        out[out.size() - 3] = 1;
        out[out.size() - 2] = 1;
        if ((node.flags & kFlagKeepDims) == 0 && state.dims[node.outputs[0]].size() == input.size() - 2) {
          out.erase(out.end() - 3, out.end() - 1);
        }
        break;
      }
      case NodeKind::kStaticResizeBilinear2d: {
        const Dims& input = in(0);
        if (input.size() != 4) return fail("needs a 4-D NHWC input");
        if (node.new_h == 0 || node.new_w == 0) return fail("output size must be positive");
        // Every output pixel reads input pixels, so an empty input has nothing to sample.
        if (input[1] == 0 || input[2] == 0) return fail("input " + dims_string(input) + " has no pixels to resize");
        out = {input[0], node.new_h, node.new_w, input[3]};
        break;
      }
      case NodeKind::kStaticTranspose: {
        const Dims& input = in(0);
        if (node.list_a.size() != input.size()) return fail("permutation rank does not match the input");
        std::vector<bool> seen(input.size(), false);
        for (int64_t axis : node.list_a) {
          if (axis < 0 || static_cast<size_t>(axis) >= input.size() || seen[static_cast<size_t>(axis)]) {
            return fail("invalid permutation");
          }
          seen[static_cast<size_t>(axis)] = true;
          out.push_back(input[static_cast<size_t>(axis)]);
        }
        break;
      }
      case NodeKind::kStaticReshape: {
        int64_t total = numel(in(0));
        int64_t known = 1;
        int inferred = -1;
        out = node.list_a;
        if (out.size() > kMaxDims) return fail("new shape has too many dimensions");
        for (size_t i = 0; i < out.size(); ++i) {
          // XNNPACK writes 0 for the one inferred dimension (PyTorch's -1).
          if (out[i] == 0) {
            if (inferred >= 0) return fail("more than one inferred dimension");
            inferred = static_cast<int>(i);
          } else {
            known *= out[i];
          }
        }
        if (inferred >= 0) {
          if (known == 0 || total % known != 0) return fail("cannot infer a dimension of " + dims_string(node.list_a));
          out[static_cast<size_t>(inferred)] = total / known;
        }
        if (numel(out) != total) {
          return fail("cannot reshape " + dims_string(in(0)) + " to " + dims_string(node.list_a));
        }
        break;
      }
      case NodeKind::kStaticSlice: {
        const Dims& input = in(0);
        if (node.list_a.size() != input.size() || node.list_b.size() != input.size()) {
          return fail("offsets and sizes must match the input rank");
        }
        for (size_t i = 0; i < input.size(); ++i) {
          int64_t size = node.list_b[i] == 0 ? input[i] - node.list_a[i] : node.list_b[i];
          if (node.list_a[i] > input[i] || size < 0 || node.list_a[i] + size > input[i]) {
            return fail("slice is out of range of " + dims_string(input));
          }
          out.push_back(size);
        }
        break;
      }
      case NodeKind::kConcatenate: {
        out = in(0);
        if (node.axis >= out.size()) return fail("axis " + std::to_string(node.axis) + " is out of range");
        for (size_t i = 1; i < node.inputs.size(); ++i) {
          const Dims& other = in(i);
          if (other.size() != out.size()) return fail("inputs have different ranks");
          for (size_t d = 0; d < out.size(); ++d) {
            if (d != node.axis && other[d] != out[d]) return fail("inputs differ outside the axis");
          }
          out[node.axis] += other[node.axis];
        }
        break;
      }
      case NodeKind::kStaticConstantPad: {
        const Dims& input = in(0);
        if (node.list_a.size() != input.size() || node.list_b.size() != input.size()) {
          return fail("paddings must match the input rank");
        }
        for (size_t i = 0; i < input.size(); ++i) out.push_back(input[i] + node.list_a[i] + node.list_b[i]);
        break;
      }
      case NodeKind::kScaledDotProductAttention: {
        const Dims& q = in(0);
        const Dims& k = in(1);
        const Dims& v = in(2);
        if (q.size() < 2 || k.size() != q.size() || v.size() != q.size()) return fail("query, key and value need the same rank");
        if (q.back() != k.back() || k[k.size() - 2] != v[v.size() - 2]) return fail("query, key and value shapes do not match");
        // The kernel walks key and value heads in step with the query's, so the leading
        // (batch and head) dims must be equal.
        if (!std::equal(q.begin(), q.end() - 2, k.begin()) || !std::equal(q.begin(), q.end() - 2, v.begin())) {
          return fail("key " + dims_string(k) + " and value " + dims_string(v) +
                      " must have the query's batch and head dims " + dims_string(q));
        }
        if (numel(in(3)) != q.back()) return fail("scale must have one value per query channel");
        const Dims& mask = in(4);
        if (mask.size() != 2 || mask[0] != q[q.size() - 2] || mask[1] != k[k.size() - 2]) return fail("mask must be [T, U]");
        out = q;
        out.back() = v.back();
        break;
      }
      default:
        out = in(0);
        break;
    }
    int64_t count = checked_numel(out);
    if (count < 0 || count > (int64_t{1} << 40)) return fail("output is too large");
    state.dims[node.outputs[0]] = std::move(out);
  }
  return Status::Ok();
}

size_t Graph::plan_intermediates(const std::vector<Dims>& dims, std::vector<size_t>& offsets) const {
  // First-fit offsets in one arena, reusing a value's memory after its last use.
  struct Block {
    size_t offset, size;
    int32_t last_use;
  };
  std::vector<Block> live;
  offsets.assign(values_.size(), 0);
  size_t arena_bytes = 0;
  for (size_t n = 0; n < nodes_.size(); ++n) {
    const Node& node = nodes_[n];
    auto allocate = [&](uint32_t output) {
      const Value& value = values_[output];
      if (value.external_output) return;
      live.erase(std::remove_if(live.begin(), live.end(),
                                [&](const Block& block) { return block.last_use < static_cast<int32_t>(n); }),
                 live.end());

      // A reshape or copy whose input dies here takes over the input's memory, so running it
      // copies nothing (run_node skips the copy when both pointers are equal).
      bool copies = node.kind == NodeKind::kStaticReshape || node.kind == NodeKind::kCopy ||
                    node.kind == NodeKind::kConvert;
      uint32_t input = node.inputs.empty() ? kInvalidId : node.inputs[0];
      if (copies && value.allocated_at < 0 && input != kInvalidId && values_[input].first_use >= 0 &&
          !values_[input].external_output && values_[input].last_use == static_cast<int32_t>(n) &&
          numel(dims[input]) == numel(dims[output])) {
        auto block = std::find_if(live.begin(), live.end(), [&](const Block& b) { return b.offset == offsets[input]; });
        if (block != live.end()) {
          block->last_use = std::max(block->last_use, value.last_use);
          offsets[output] = offsets[input];
          return;
        }
      }
      size_t bytes = (static_cast<size_t>(numel(dims[output])) * sizeof(float) + 63) / 64 * 64;
      std::sort(live.begin(), live.end(), [](const Block& a, const Block& b) { return a.offset < b.offset; });
      size_t offset = 0;
      for (const Block& block : live) {
        if (block.offset >= offset + bytes) break;
        offset = std::max(offset, block.offset + block.size);
      }
      live.push_back({offset, bytes, value.last_use});
      offsets[output] = offset;
      arena_bytes = std::max(arena_bytes, offset + bytes);
    };
    // Values written early (a product's output chain) are allocated where they are written.
    for (uint32_t output : node.early_outputs) allocate(output);
    for (uint32_t output : node.outputs) {
      if (values_[output].allocated_at < 0) allocate(output);
    }
  }
  return arena_bytes;
}

void Graph::plan_at_load() {
  std::vector<Dims> dims(values_.size());
  planned_numel_.assign(values_.size(), 0);
  for (size_t i = 0; i < values_.size(); ++i) {
    dims[i] = values_[i].dims;
    planned_numel_[i] = numel(dims[i]);
  }
  planned_bytes_ = plan_intermediates(dims, planned_offsets_);
}

std::unique_ptr<CallState> Graph::acquire_state() const {
  {
    std::lock_guard<std::mutex> lock(states_mutex_);
    if (!states_.empty()) {
      // Preferably one this thread used last: its memory is in this core's cache. Writing lines
      // that are in the other core's cache waits for them to come over.
      auto mine = std::find_if(states_.rbegin(), states_.rend(),
                               [](const std::unique_ptr<CallState>& state) { return state->thread == std::this_thread::get_id(); });
      auto chosen = mine != states_.rend() ? std::prev(mine.base()) : std::prev(states_.end());
      auto state = std::move(*chosen);
      states_.erase(chosen);
      return state;
    }
  }
  return std::make_unique<CallState>();
}

void Graph::release_state(std::unique_ptr<CallState> state) const {
  state->thread = std::this_thread::get_id();
  std::lock_guard<std::mutex> lock(states_mutex_);
  states_.push_back(std::move(state));
}

Status Graph::bind_outputs(CallState& state, std::span<EValue* const> args) const {
  // External outputs: resize the program's tensors, then write into them directly.
  for (uint32_t id = 0; id < extern_count_; ++id) {
    if (outputs_[id] == kInvalidId) continue;
    Tensor& tensor = *args[id]->tensor;
    const Dims& dims = state.dims[outputs_[id]];
    if (dims.size() != tensor.sizes.size()) {
      return Status(ErrorCode::kDelegateFailed, "XNNPACK output " + std::to_string(id) + " has rank " +
                                                    std::to_string(dims.size()) + " but the program's tensor has " +
                                                    std::to_string(tensor.sizes.size()));
    }
    std::vector<int64_t> sizes(dims.size());
    for (size_t j = 0; j < dims.size(); ++j) sizes[tensor.dim_order[j]] = dims[j];
    Status resized = tensor.resize(sizes);
    if (resized.code() == ErrorCode::kKernelFailed) {
      // The graph's shape does not fit the program's tensor: the delegate failed, not a kernel.
      return Status(ErrorCode::kDelegateFailed, "XNNPACK output " + std::to_string(id) + ": " + resized.message());
    }
    EI_RETURN_IF_ERROR(resized.with_context("XNNPACK output " + std::to_string(id) + ": "));
    state.data[outputs_[id]] = static_cast<float*>(tensor.data);
  }
  return Status::Ok();
}

Status Graph::prepare_call(CallState& state, std::span<EValue* const> args) const {
  if (args.size() != extern_count_) {
    return Status(ErrorCode::kDelegateFailed, "XNNPACK delegate called with " + std::to_string(args.size()) +
                                                  " arguments, its graph has " + std::to_string(extern_count_) +
                                                  " externals");
  }
  // External inputs: shapes in memory order (dims permuted by the tensor's dim order), as one
  // list of rank and dims per input.
  std::vector<int64_t> input_shapes;
  for (uint32_t id = 0; id < extern_count_; ++id) {
    EValue* arg = args[id];
    if (arg == nullptr || arg->tag != Tag::kTensor || arg->tensor == nullptr) {
      return Status(ErrorCode::kDelegateFailed, "XNNPACK argument " + std::to_string(id) + " is not a tensor");
    }
    if (arg->tensor->dtype != ScalarType::kFloat) {
      return Status(ErrorCode::kDelegateFailed, "XNNPACK argument " + std::to_string(id) + " is " +
                                                    dtype_name(arg->tensor->dtype) + ", expected float32");
    }
    if (inputs_[id] == kInvalidId) continue;
    const Tensor& tensor = *arg->tensor;
    // Like xnn_reshape_external_value, the call's shape replaces the serialized one, rank included
    // (upstream passes a 0-d constant for a value serialized as [1], for example).
    if (tensor.dim_order.size() > kMaxDims) {
      return Status(ErrorCode::kDelegateFailed, "XNNPACK input " + std::to_string(id) + " has rank " +
                                                    std::to_string(tensor.dim_order.size()) + ", above XNNPACK's limit of 6");
    }
    input_shapes.push_back(static_cast<int64_t>(tensor.dim_order.size()));
    for (uint8_t d : tensor.dim_order) input_shapes.push_back(tensor.sizes[d]);
  }
  auto bind_inputs = [&]() {
    for (uint32_t id = 0; id < extern_count_; ++id) {
      if (inputs_[id] == kInvalidId) continue;
      const Tensor& tensor = *args[id]->tensor;
      state.data[inputs_[id]] = tensor.numel() == 0 ? nullptr : static_cast<float*>(tensor.data);
    }
  };
  // A state last prepared for the same input shapes keeps what depends only on them (value
  // shapes, memory plan, combined forms), so only the program's tensors need binding.
  if (!state.input_shapes.empty() && state.input_shapes == input_shapes) {
    bind_inputs();
    return bind_outputs(state, args);
  }
  state.input_shapes.clear();
  state.dims.resize(values_.size());
  state.data.assign(values_.size(), nullptr);
  for (size_t i = 0; i < values_.size(); ++i) {
    state.dims[i] = values_[i].dims;
    if (values_[i].constant != nullptr) state.data[i] = const_cast<float*>(values_[i].constant);
  }
  for (uint32_t id = 0; id < extern_count_; ++id) {
    if (inputs_[id] == kInvalidId) continue;
    const Tensor& tensor = *args[id]->tensor;
    Dims dims;
    for (uint8_t d : tensor.dim_order) dims.push_back(tensor.sizes[d]);
    state.dims[inputs_[id]] = std::move(dims);
  }
  bind_inputs();
  EI_RETURN_IF_ERROR(infer_shapes(state));

  EI_RETURN_IF_ERROR(bind_outputs(state, args));

  // Intermediate values use the plan made at load unless this call's shapes outgrow it.
  const std::vector<size_t>* offsets = &planned_offsets_;
  size_t arena_bytes = planned_bytes_;
  std::vector<size_t> call_offsets;
  for (size_t i = 0; i < values_.size(); ++i) {
    if (numel(state.dims[i]) > planned_numel_[i]) {
      arena_bytes = plan_intermediates(state.dims, call_offsets);
      offsets = &call_offsets;
      break;
    }
  }
  if (arena_bytes > max_workspace_bytes_) {
    return Status(ErrorCode::kOutOfMemory, "XNNPACK intermediates need " + std::to_string(arena_bytes) +
                                               " bytes, more than the limit of " +
                                               std::to_string(max_workspace_bytes_) + " per call");
  }
  if (!state.arena || state.arena_bytes < arena_bytes) {
    state.arena = allocate_aligned(arena_bytes);
    if (!state.arena) return Status(ErrorCode::kOutOfMemory, "cannot allocate the XNNPACK workspace");
    state.arena_bytes = arena_bytes;
  }
  for (const Node& node : nodes_) {
    for (uint32_t output : node.outputs) {
      if (!values_[output].external_output) {
        state.data[output] = reinterpret_cast<float*>(state.arena.get() + (*offsets)[output]);
      }
    }
  }
  state.takes_over.assign(nodes_.size(), 0);
  for (size_t n = 0; n < nodes_.size(); ++n) {
    const Node& node = nodes_[n];
    if (node.kind == NodeKind::kBatchMatrixMultiply) {
      StridedView views[3];
      state.takes_over[n] = chain_views(node, state, views) ? 1 : 0;
    } else if (node.residual != kInvalidId) {
      // A call whose residual would broadcast runs the Add itself.
      const Dims& dims = state.dims[node.outputs[0]];
      state.takes_over[n] = state.dims[node.residual] == dims && state.dims[node.residual_output] == dims ? 1 : 0;
    }
  }
  for (size_t n = 0; n < nodes_.size(); ++n) {
    if (nodes_[n].attention_product >= 0 && attention_fits(n, state)) state.takes_over[n] = 2;
  }
  state.input_shapes = std::move(input_shapes);
  return Status::Ok();
}

bool Graph::chain_views(const Node& node, const CallState& state, StridedView views[3]) const {
  for (size_t i = 0; i < 2; ++i) {
    const LayoutChain& chain = node.chains[i];
    const Dims& dims = state.dims[node.inputs[i]];
    if (chain.value == kInvalidId) {
      views[i] = contiguous_view(dims);
      continue;
    }
    StridedView view = contiguous_view(state.dims[chain.value]);
    for (uint32_t n : chain.nodes) {
      const Node& step = nodes_[n];
      if (step.kind == NodeKind::kStaticTranspose) {
        if (step.list_a.size() != view.dims.size()) return false;
        StridedView permuted = view;
        for (size_t d = 0; d < view.dims.size(); ++d) {
          permuted.dims[d] = view.dims[static_cast<size_t>(step.list_a[d])];
          permuted.strides[d] = view.strides[static_cast<size_t>(step.list_a[d])];
        }
        view = std::move(permuted);
      } else if (!reshape_view(view, state.dims[step.outputs[0]])) {
        return false;
      }
    }
    if (view.dims != dims) return false;
    views[i] = std::move(view);
  }
  const LayoutChain& chain = node.chains[2];
  if (chain.value == kInvalidId) {
    views[2] = contiguous_view(state.dims[node.outputs[0]]);
  } else {
    // Walks back from the far end: each step gives the view of the step's input.
    StridedView view = contiguous_view(state.dims[chain.value]);
    for (size_t i = chain.nodes.size(); i-- > 0;) {
      const Node& step = nodes_[chain.nodes[i]];
      if (step.kind == NodeKind::kStaticTranspose) {
        if (step.list_a.size() != view.dims.size()) return false;
        StridedView source = view;
        for (size_t d = 0; d < view.dims.size(); ++d) {
          source.dims[static_cast<size_t>(step.list_a[d])] = view.dims[d];
          source.strides[static_cast<size_t>(step.list_a[d])] = view.strides[d];
        }
        view = std::move(source);
      } else if (!reshape_view(view, state.dims[step.inputs[0]])) {
        return false;
      }
    }
    if (view.dims != state.dims[node.outputs[0]]) return false;
    views[2] = std::move(view);
  }
  // Operands that are not BLAS matrices are gathered when the product runs, but the result
  // must be one.
  return numel(views[2].dims) > 0 && matrix_stride(views[2]) > 0;
}

namespace {

// Returns the memory of a BatchMatrixMultiply's operand i (0 or 1), or of its result (i = 2):
// the far end of that side's layout chain when the call reads `through` the chains and the
// side has one, else the node's own value.
float* product_memory(const Node& node, size_t i, const CallState& state, bool through) {
  uint32_t value = i < 2 ? node.inputs[i] : node.outputs[0];
  return through && node.chains[i].value != kInvalidId ? state.data[node.chains[i].value] : state.data[value];
}

}  // namespace

bool Graph::attention_views(size_t index, const CallState& state, AttentionViews& views) const {
  const Node& first = nodes_[index];
  if (!chain_views(first, state, views.first) ||
      !chain_views(nodes_[static_cast<size_t>(first.attention_product)], state, views.second)) {
    return false;
  }
  // Queries [.., m, dk], keys [.., dk, n] or [.., n, dk], values [.., n, dv] and result
  // [.., m, dv], with the same heads everywhere.
  const Dims& out = views.second[2].dims;
  size_t rank = out.size();
  if (rank < 2) return false;
  const Dims& queries = views.first[0].dims;
  const Dims& keys = views.first[1].dims;
  const Dims& values = views.second[1].dims;
  for (const Dims* dims : {&queries, &keys, &values}) {
    if (dims->size() != rank || !std::equal(out.begin(), out.end() - 2, dims->begin())) return false;
  }
  views.keys_transposed = (first.flags & kFlagTransposeWeights) != 0;
  views.heads = numel(Dims(out.begin(), out.end() - 2));
  views.m = out[rank - 2];
  views.dv = out[rank - 1];
  views.dk = queries[rank - 1];
  views.n = views.keys_transposed ? keys[rank - 2] : keys[rank - 1];
  int64_t key_dk = views.keys_transposed ? keys[rank - 1] : keys[rank - 2];
  return queries[rank - 2] == views.m && key_dk == views.dk && values[rank - 2] == views.n && values[rank - 1] == views.dv;
}

bool Graph::attention_fits(size_t index, const CallState& state) const {
  const Node& first = nodes_[index];
  size_t b = static_cast<size_t>(first.attention_product);
  if (state.takes_over[index] == 0 || state.takes_over[b] == 0) return false;

  // The Multiply and the Softmax keep the scores' shape.
  const Node& multiply = nodes_[static_cast<size_t>(first.attention_multiply)];
  const Node& softmax = nodes_[static_cast<size_t>(first.attention_softmax)];
  uint32_t scores = multiply.inputs[0] == first.attention_scale ? multiply.inputs[1] : multiply.inputs[0];
  if (numel(state.dims[first.attention_scale]) != 1 || state.dims[multiply.outputs[0]] != state.dims[scores] ||
      state.dims[softmax.outputs[0]] != state.dims[softmax.inputs[0]]) {
    return false;
  }

  AttentionViews views;
  if (!attention_views(index, state, views)) return false;
  size_t rank = views.second[2].dims.size();
  if (views.n < 1 || views.n > kAttentionMaxKeys || views.dv > kAttentionMaxValueColumns) return false;
  // The kernel loads rows of the values and stores rows of the result as vectors.
  if (views.dv > 1 && (views.second[1].strides[rank - 1] != 1 || views.second[2].strides[rank - 1] != 1)) return false;

  // The scores are written, and the probabilities read, in row-major [.., m, n] order, and the
  // Softmax runs over their last dimension, the keys. A chain that transposes or regroups them
  // (a softmax over other rows) keeps the separate nodes.
  auto row_major = [](const StridedView& view) {
    int64_t expected = 1;
    for (size_t d = view.dims.size(); d-- > 0;) {
      if (view.dims[d] != 1 && view.strides[d] != expected) return false;
      expected *= view.dims[d];
    }
    return true;
  };
  const Dims& out = views.second[2].dims;
  for (const StridedView* view : {&views.first[2], &views.second[0]}) {
    if (view->dims.size() != rank || !std::equal(out.begin(), out.end() - 2, view->dims.begin()) ||
        view->dims[rank - 2] != views.m || view->dims[rank - 1] != views.n || !row_major(*view)) {
      return false;
    }
  }
  const Dims& softmax_dims = state.dims[softmax.inputs[0]];
  if (softmax_dims.empty() || softmax_dims.back() != views.n) return false;

  // Scratch floats: every head's transposed keys and the kernel's own, within the workspace.
  uint64_t keys = 0, floats = 0;
  if (views.dk > (int64_t{1} << 32) ||
      __builtin_mul_overflow(static_cast<uint64_t>(views.heads), static_cast<uint64_t>(attention_keys_floats(views.dk)), &keys) ||
      __builtin_add_overflow(keys, static_cast<uint64_t>(attention_scratch_floats()), &floats)) {
    return false;
  }
  return floats <= max_workspace_bytes_ / sizeof(float);
}

Status Graph::run_attention(size_t index, CallState& state) const {
  const Node& first = nodes_[index];
  const Node& second = nodes_[static_cast<size_t>(first.attention_product)];
  AttentionViews views;
  attention_views(index, state, views);  // succeeds: attention_fits() checked these shapes
  const StridedView* a = views.first;
  const StridedView* c = views.second;
  const float* queries = product_memory(first, 0, state, true);
  const float* keys = product_memory(first, 1, state, true);
  const float* values = product_memory(second, 1, state, true);
  float* result = product_memory(second, 2, state, true);
  float scale = state.data[first.attention_scale][0];
  const Dims& out = c[2].dims;
  size_t rank = out.size();
  int64_t heads = views.heads, m = views.m, n = views.n, dk = views.dk, dv = views.dv;
  int64_t keys_floats = attention_keys_floats(dk);

  // Scratch memory of this thread rather than of the call, because a call's state moves between
  // threads and writing lines that the other core wrote last waits for them (the keys'
  // transpose took 1.8 times as long). Larger needs than kThreadScratchFloats use the call's.
  constexpr size_t kThreadScratchFloats = size_t{1} << 20;
  thread_local std::vector<float> thread_scratch;
  size_t floats = static_cast<size_t>(heads * keys_floats + attention_scratch_floats());
  float* keys_t = nullptr;
  if (floats <= kThreadScratchFloats) {
    try {
      if (thread_scratch.size() < floats) thread_scratch.resize(floats);
      keys_t = thread_scratch.data();
    } catch (const std::bad_alloc&) {
      keys_t = nullptr;
    }
  }
  if (keys_t == nullptr) {
    EI_RETURN_IF_ERROR(reserve_scratch(state, floats, index, first));
    keys_t = state.scratch.data();
  }
  float* scratch = keys_t + heads * keys_floats;
  // A head's offset in each operand: queries, keys, values, result.
  auto head_offsets = [&](int64_t h) {
    std::array<int64_t, 4> offsets{0, 0, 0, 0};
    for (size_t d = rank - 2; d-- > 0;) {
      int64_t coordinate = h % out[d];
      h /= out[d];
      offsets[0] += coordinate * a[0].strides[d];
      offsets[1] += coordinate * a[1].strides[d];
      offsets[2] += coordinate * c[1].strides[d];
      offsets[3] += coordinate * c[2].strides[d];
    }
    return offsets;
  };
  // Key j, element d: [.., dk, n] has j in the last dimension.
  int64_t key_stride = views.keys_transposed ? a[1].strides[rank - 2] : a[1].strides[rank - 1];
  int64_t key_element_stride = views.keys_transposed ? a[1].strides[rank - 1] : a[1].strides[rank - 2];

  // First the keys of every head are transposed, a block of keys at a time across the heads,
  // while the same rows of the queries and values are fetched into the L2 cache. Then the heads
  // run. Read head by head instead, each row's few lines were a separate wait, and the heads
  // took twice as long as with their operands in cache.
  int64_t value_bytes = dv * static_cast<int64_t>(sizeof(float));
  int64_t query_bytes = a[0].strides[rank - 1] == 1 ? dk * static_cast<int64_t>(sizeof(float)) : 0;
  auto prefetch = [](const float* data, int64_t bytes) {
#if defined(__SSE__)
    const char* start = reinterpret_cast<const char*>(data);
    for (int64_t byte = 0; byte < bytes; byte += 64) _mm_prefetch(start + byte, _MM_HINT_T1);
#else
    (void)data, (void)bytes;
#endif
  };
  for (int64_t j0 = 0; j0 < n; j0 += kAttentionKeyBlock) {
    for (int64_t h = 0; h < heads; ++h) {
      std::array<int64_t, 4> head = head_offsets(h);
      attention_transpose_keys(j0, n, dk, {keys + head[1], key_stride, key_element_stride}, keys_t + h * keys_floats);
      for (int64_t row = j0; row < std::min(n, j0 + kAttentionKeyBlock); ++row) {
        prefetch(values + head[2] + row * c[1].strides[rank - 2], value_bytes);
      }
      for (int64_t row = j0; row < std::min(m, j0 + kAttentionKeyBlock); ++row) {
        prefetch(queries + head[0] + row * a[0].strides[rank - 2], query_bytes);
      }
    }
  }
  for (int64_t row = n; row < m; ++row) {
    for (int64_t h = 0; h < heads; ++h) {
      prefetch(queries + head_offsets(h)[0] + row * a[0].strides[rank - 2], query_bytes);
    }
  }

  for (int64_t h = 0; h < heads; ++h) {
    std::array<int64_t, 4> head = head_offsets(h);
    AttentionOperand q{queries + head[0], a[0].strides[rank - 2], a[0].strides[rank - 1]};
    AttentionOperand v{values + head[2], c[1].strides[rank - 2], 1};
    attention_head(m, n, dk, dv, q, keys_t + h * keys_floats, scale, v, result + head[3], c[2].strides[rank - 2], scratch);
  }
  return Status::Ok();
}

Status Graph::execute(KernelContext& context, std::span<EValue* const> args) const {
  std::unique_ptr<CallState> state = acquire_state();
  Status status = prepare_call(*state, args);
  for (size_t n = 0; n < nodes_.size() && status.ok(); ++n) status = run_node(n, *state, context.pool);
  release_state(std::move(state));
  return status;
}

void Graph::execute_batch(ThreadPool* pool, std::span<const std::span<EValue* const>> args,
                          std::span<Status> statuses) const {
  std::vector<std::unique_ptr<CallState>> states(args.size());
  std::vector<size_t> live;
  for (size_t i = 0; i < args.size(); ++i) {
    states[i] = acquire_state();
    statuses[i] = prepare_call(*states[i], args[i]);
    if (statuses[i].ok()) live.push_back(i);
  }
  std::vector<CallState*> live_states;
  std::vector<Status> conv_statuses;
  // Nodes that run as one product over every call's rows.
  auto batched = [](const Node& node) {
    return node.packed >= 0 && (node.kind == NodeKind::kFullyConnected || node.kind == NodeKind::kConv2d);
  };
  for (size_t n = 0; n < nodes_.size() && !live.empty(); ++n) {
    const Node& node = nodes_[n];
    // Skip a node whose work another node does for every call, without a round over the threads.
    if (node.elided_by >= 0 &&
        std::all_of(live.begin(), live.end(), [&](size_t i) {
          return states[i]->takes_over[static_cast<size_t>(node.elided_by)] >= node.elided_level;
        })) {
      continue;
    }
    if (live.size() == 1) {
      statuses[live.front()] = run_node(n, *states[live.front()], pool);
    } else if (batched(node)) {
      live_states.clear();
      for (size_t i : live) live_states.push_back(states[i].get());
      if (node.kind == NodeKind::kFullyConnected) {
        run_linear_batch(n, live_states, pool);
      } else {
        conv_statuses.assign(live.size(), Status::Ok());
        run_conv_batch(n, live_states, conv_statuses, pool);
        for (size_t j = 0; j < live.size(); ++j) statuses[live[j]] = conv_statuses[j];
      }
    } else {
      // This node and the ones after it up to the next batched product, one call per thread.
      // Each call runs them in order on one thread, so its attention block stays in that core's
      // cache. The threads meet once for all of them instead of once per node.
      size_t last = n + 1;
      while (last < nodes_.size() && !batched(nodes_[last])) ++last;
      parallel_for(pool, live.size(), 1, [&](size_t begin, size_t end) {
        for (size_t j = begin; j < end; ++j) {
          CallState& state = *states[live[j]];
          for (size_t m = n; m < last && statuses[live[j]].ok(); ++m) statuses[live[j]] = run_node(m, state, nullptr);
        }
      });
      n = last - 1;
    }
    live.erase(std::remove_if(live.begin(), live.end(), [&](size_t i) { return !statuses[i].ok(); }), live.end());
  }
  for (auto& state : states) release_state(std::move(state));
}

Graph::LinearShape Graph::linear_shape(const Node& node, const CallState& state) const {
  const Dims& filter = state.dims[node.inputs[1]];
  bool transposed = (node.flags & kFlagTransposeWeights) != 0;
  int64_t k = transposed ? filter[0] : filter[1];
  int64_t n = transposed ? filter[1] : filter[0];
  int64_t m = k == 0 ? 0 : numel(state.dims[node.inputs[0]]) / k;
  if (node.live_rows > 0) m = std::min(m, node.live_rows);
  return {m, n, k};
}

RowSegment Graph::linear_segment(size_t index, const CallState& state) const {
  const Node& node = nodes_[index];
  LinearShape shape = linear_shape(node, state);
  RowSegment segment{shape.m, state.data[node.inputs[0]], shape.k, state.data[node.outputs[0]], shape.n};
  if (node.residual != kInvalidId && state.takes_over[index]) {
    segment.c = state.data[node.residual_output];
    segment.addend = state.data[node.residual];
  }
  return segment;
}

void Graph::run_linear_batch(size_t index, std::span<CallState* const> states, ThreadPool* pool) const {
  const Node& node = nodes_[index];
  std::vector<RowSegment> segments;
  for (CallState* state : states) segments.push_back(linear_segment(index, *state));
  packed_linear(pool, segments, packed_[static_cast<size_t>(node.packed)], node.activation);
  parallel_for(pool, states.size(), 1, [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) {
      clamp_range(segments[i].c, static_cast<size_t>(segments[i].m * segments[i].ldc), node.output_min, node.output_max);
    }
  });
}

void Graph::run_conv_batch(size_t index, std::span<CallState* const> states, std::span<Status> statuses,
                           ThreadPool* pool) const {
  const Node& node = nodes_[index];
  int64_t patch = static_cast<int64_t>(node.kernel_h) * node.kernel_w * node.group_in;
  // Each call's im2col rows, for all of its images, in its own scratch memory, one call per
  // thread. A call whose rows do not fit there runs alone afterwards.
  std::vector<uint8_t> alone(states.size(), 0);
  parallel_for(pool, states.size(), 1, [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) {
      CallState& state = *states[i];
      const Dims& input = state.dims[node.inputs[0]];
      const Dims& out_dims = state.dims[node.outputs[0]];
      int64_t pixels = out_dims[1] * out_dims[2];
      uint64_t floats = static_cast<uint64_t>(input[0]) * static_cast<uint64_t>(pixels) * static_cast<uint64_t>(patch);
      if (!reserve_scratch(state, floats, index, node).ok()) {
        alone[i] = 1;
        continue;
      }
      int64_t image_floats = input[1] * input[2] * input[3];
      for (int64_t b = 0; b < input[0]; ++b) {
        im2col(node, input, out_dims, state.data[node.inputs[0]] + b * image_floats, 0,
               state.scratch.data() + b * pixels * patch, nullptr);
      }
    }
  });
  std::vector<RowSegment> segments;
  for (size_t i = 0; i < states.size(); ++i) {
    if (alone[i]) continue;
    const CallState& state = *states[i];
    const Dims& out_dims = state.dims[node.outputs[0]];
    int64_t pixels = out_dims[1] * out_dims[2], channels = out_dims[3];
    for (int64_t b = 0; b < out_dims[0]; ++b) {
      segments.push_back({pixels, state.scratch.data() + b * pixels * patch, patch,
                          state.data[node.outputs[0]] + b * pixels * channels, channels});
    }
  }
  packed_linear(pool, segments, packed_[static_cast<size_t>(node.packed)]);
  parallel_for(pool, states.size(), 1, [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) {
      CallState& state = *states[i];
      if (alone[i]) {
        statuses[i] = run_node(index, state, nullptr);
      } else {
        clamp_range(state.data[node.outputs[0]], static_cast<size_t>(numel(state.dims[node.outputs[0]])),
                    node.output_min, node.output_max);
      }
    }
  });
}

Status Graph::reserve_scratch(CallState& state, uint64_t floats, size_t index, const Node& node) const {
  if (floats > max_workspace_bytes_ / sizeof(float)) {
    return Status(ErrorCode::kOutOfMemory, "XNNPACK node " + std::to_string(index) + " (" + node_kind_name(node.kind) +
                                               ") needs " + std::to_string(floats * sizeof(float)) +
                                               " bytes of scratch memory, more than the limit of " +
                                               std::to_string(max_workspace_bytes_) + " per call");
  }
  try {
    state.scratch.resize(static_cast<size_t>(floats));
  } catch (const std::bad_alloc&) {
    return Status(ErrorCode::kOutOfMemory, "cannot allocate " + std::to_string(floats * sizeof(float)) +
                                               " bytes of scratch memory for XNNPACK node " + std::to_string(index));
  }
  return Status::Ok();
}

Status Graph::run_node(size_t index, CallState& state, ThreadPool* pool) const {
  const Node& node = nodes_[index];
  // A layout node that a product reads or writes through in this call does nothing.
  if (node.elided_by >= 0 && state.takes_over[static_cast<size_t>(node.elided_by)] >= node.elided_level) {
    return Status::Ok();
  }
  auto in = [&](size_t i) { return state.data[node.inputs[i]]; };
  auto in_dims = [&](size_t i) -> const Dims& { return state.dims[node.inputs[i]]; };
  float* out = state.data[node.outputs[0]];
  const Dims& out_dims = state.dims[node.outputs[0]];
  size_t count = static_cast<size_t>(numel(out_dims));
  float low = node.output_min, high = node.output_max;
  // Rows nothing reads are not computed (Graph::limit_rows): elementwise nodes see their
  // full-shape operands and output as [live_rows, last dim]. The limit holds only while every
  // operand has the output's shape or one element, as at load. A call with other shapes
  // computes every row.
  Dims limited_dims;
  bool limit = node.live_rows > 0 && !out_dims.empty() && out_dims.back() > 0 &&
               static_cast<int64_t>(count) / out_dims.back() > node.live_rows;
  if (limit && node.kind != NodeKind::kFullyConnected) {
    for (size_t i = 0; i < node.inputs.size(); ++i) {
      if (node.inputs[i] != kInvalidId && in_dims(i) != out_dims && numel(in_dims(i)) != 1) limit = false;
    }
  }
  if (limit) {
    limited_dims = {node.live_rows, out_dims.back()};
    count = static_cast<size_t>(node.live_rows * out_dims.back());
  }
  static const Dims kScalar;
  auto binary_dims = [&](size_t i) -> const Dims& {
    if (limited_dims.empty()) return in_dims(i);
    return in_dims(i) == out_dims ? limited_dims : kScalar;
  };
  const Dims& binary_out = limited_dims.empty() ? out_dims : limited_dims;

  switch (node.kind) {
    case NodeKind::kAdd:
      binary_broadcast(in(0), binary_dims(0), in(1), binary_dims(1), out, binary_out, [](float a, float b) { return a + b; }, pool);
      break;
    case NodeKind::kSubtract:
      binary_broadcast(in(0), binary_dims(0), in(1), binary_dims(1), out, binary_out, [](float a, float b) { return a - b; }, pool);
      break;
    case NodeKind::kMultiply:
      binary_broadcast(in(0), binary_dims(0), in(1), binary_dims(1), out, binary_out, [](float a, float b) { return a * b; }, pool);
      break;
    case NodeKind::kDivide:
      binary_broadcast(in(0), binary_dims(0), in(1), binary_dims(1), out, binary_out, [](float a, float b) { return a / b; }, pool);
      break;
    case NodeKind::kMinimum:
      binary_broadcast(in(0), binary_dims(0), in(1), binary_dims(1), out, binary_out, [](float a, float b) { return std::min(a, b); }, pool);
      break;
    case NodeKind::kMaximum:
      binary_broadcast(in(0), binary_dims(0), in(1), binary_dims(1), out, binary_out, [](float a, float b) { return std::max(a, b); }, pool);
      break;
    case NodeKind::kPRelu:
      binary_broadcast(in(0), binary_dims(0), in(1), binary_dims(1), out, binary_out,
                       [](float x, float slope) { return x < 0 ? x * slope : x; }, pool);
      break;

    case NodeKind::kFullyConnected: {
      RowSegment segment = linear_segment(index, state);
      if (node.packed >= 0) {
        packed_linear(pool, std::span<const RowSegment>(&segment, 1), packed_[static_cast<size_t>(node.packed)],
                      node.activation);
      } else {
        bool transposed = (node.flags & kFlagTransposeWeights) != 0;
        const float* bias = node.inputs[2] == kInvalidId ? nullptr : in(2);
        linear(pool, segment.m, segment.ldc, segment.lda, segment.a, in(1), transposed, bias, segment.c);
        size_t values = static_cast<size_t>(segment.m * segment.ldc);
        parallel_for(pool, values, 1 << 14, [&](size_t begin, size_t end) {
          apply_activation(node.activation, segment.c + begin, end - begin);
          if (segment.addend != nullptr) add_row(segment.c + begin, segment.addend + begin, end - begin);
        });
      }
      break;
    }

    case NodeKind::kBatchMatrixMultiply: {
      if (state.takes_over[index] == 2) return run_attention(index, state);
      // Operands and result as strided views: through the layout chains when this call uses
      // them (Graph::elide_layout_nodes), else the values themselves.
      StridedView views[3];
      bool through = state.takes_over[index] != 0;
      if (!through || !chain_views(node, state, views)) {
        through = false;
        views[0] = contiguous_view(in_dims(0));
        views[1] = contiguous_view(in_dims(1));
        views[2] = contiguous_view(out_dims);
      }
      const float* operands[2] = {product_memory(node, 0, state, through), product_memory(node, 1, state, through)};
      float* c = product_memory(node, 2, state, through);
      int64_t ld[3];
      for (size_t i = 0; i < 2; ++i) {
        // An operand whose rows are not contiguous (a key transposed for the scores) is
        // gathered into its own value's memory: one copy instead of the chain's several.
        // OpenBLAS ran these small products at half the speed with a transposed operand.
        ld[i] = matrix_stride(views[i]);
        if (ld[i] == 0) {
          gather_strided(operands[i], views[i].dims, views[i].strides, state.data[node.inputs[i]], nullptr);
          operands[i] = state.data[node.inputs[i]];
          views[i] = contiguous_view(views[i].dims);
          ld[i] = matrix_stride(views[i]);
        }
      }
      ld[2] = matrix_stride(views[2]);
      if (ld[0] == 0 || ld[1] == 0 || ld[2] == 0) return node_error(index, node, "has operands that are not matrices");
      const Dims& a_dims = views[0].dims;
      const Dims& c_dims = views[2].dims;
      // With the transpose flag the second operand is [n, k].
      bool b_transposed = (node.flags & kFlagTransposeWeights) != 0;
      int64_t m = a_dims[a_dims.size() - 2], k = a_dims.back();
      int64_t n = c_dims.back();
      size_t batch_rank = c_dims.size() - 2;
      int64_t batches = 1;
      for (size_t d = 0; d < batch_rank; ++d) batches *= c_dims[d];
      // Batches in parallel when there are several (attention heads): each product is small.
      // A product called from inside the loop finds the pool busy and runs on its thread.
      parallel_for(batches > 1 ? pool : nullptr, static_cast<size_t>(batches), 1, [&](size_t begin, size_t end) {
        for (int64_t bi = static_cast<int64_t>(begin); bi < static_cast<int64_t>(end); ++bi) {
          // The output batch index as offsets into each operand (broadcast dimensions stay at 0).
          int64_t rest = bi, offset_a = 0, offset_b = 0, offset_c = 0;
          for (size_t d = batch_rank; d-- > 0;) {
            int64_t coordinate = rest % c_dims[d];
            rest /= c_dims[d];
            offset_c += coordinate * views[2].strides[d];
            for (size_t i = 0; i < 2; ++i) {
              const StridedView& view = views[i];
              size_t operand_batch = view.dims.size() - 2;
              if (d + operand_batch < batch_rank) continue;
              size_t dv = d + operand_batch - batch_rank;
              if (view.dims[dv] != 1) (i == 0 ? offset_a : offset_b) += coordinate * view.strides[dv];
            }
          }
          gemm(pool, m, n, k, operands[0] + offset_a, ld[0], operands[1] + offset_b, ld[1], b_transposed, c + offset_c,
               ld[2]);
        }
      });
      break;
    }

    case NodeKind::kConv2d: {
      const Dims& input = in_dims(0);
      int64_t batch = input[0], ih = input[1], iw = input[2], channels = input[3];
      int64_t oh = out_dims[1], ow = out_dims[2], out_channels = out_dims[3];
      int64_t kh = node.kernel_h, kw = node.kernel_w, group_in = node.group_in, group_out = node.group_out;
      int64_t patch = kh * kw * group_in;
      int64_t pixels = oh * ow;
      EI_RETURN_IF_ERROR(reserve_scratch(state, static_cast<uint64_t>(pixels) * static_cast<uint64_t>(patch), index, node));
      float* columns = state.scratch.data();
      const float* bias = node.inputs[2] == kInvalidId ? nullptr : in(2);
      for (int64_t b = 0; b < batch; ++b) {
        const float* image = in(0) + b * ih * iw * channels;
        float* result = out + b * pixels * out_channels;
        for (int64_t g = 0; g < node.groups; ++g) {
          im2col(node, input, out_dims, image, g, columns, pool);
          const float* filter = in(1) + g * group_out * patch;
          if (node.packed >= 0) {
            packed_linear(pool, pixels, columns, patch, packed_[static_cast<size_t>(node.packed)], result, out_channels);
          } else if (node.groups == 1) {
            linear(pool, pixels, group_out, patch, columns, filter, false, bias, result);
          } else {
            // Grouped: compute into the group's channel slice with row stride out_channels.
            gemm(pool, pixels, group_out, patch, columns, patch, filter, patch, true, result + g * group_out,
                 out_channels);
            if (bias != nullptr) {
              for (int64_t p = 0; p < pixels; ++p) {
                for (int64_t c = 0; c < group_out; ++c) result[p * out_channels + g * group_out + c] += bias[g * group_out + c];
              }
            }
          }
        }
      }
      break;
    }

    case NodeKind::kDepthwiseConv2d: {
      const Dims& input = in_dims(0);
      int64_t batch = input[0], ih = input[1], iw = input[2], channels = input[3];
      int64_t oh = out_dims[1], ow = out_dims[2], out_channels = out_dims[3];
      int64_t multiplier = out_channels / channels;
      const float* filter = in(1);
      const float* bias = node.inputs[2] == kInvalidId ? nullptr : in(2);
      parallel_for(pool, static_cast<size_t>(batch * oh), 1, [&](size_t begin, size_t end) {
        for (size_t row = begin; row < end; ++row) {
          int64_t b = static_cast<int64_t>(row) / oh, y = static_cast<int64_t>(row) % oh;
          for (int64_t x = 0; x < ow; ++x) {
            float* pixel = out + ((b * oh + y) * ow + x) * out_channels;
            for (int64_t c = 0; c < out_channels; ++c) pixel[c] = bias ? bias[c] : 0.0f;
            for (int64_t ky = 0; ky < node.kernel_h; ++ky) {
              int64_t sy = y * node.stride_h + ky * node.dilation_h - node.pad_top;
              if (sy < 0 || sy >= ih) continue;
              for (int64_t kx = 0; kx < node.kernel_w; ++kx) {
                int64_t sx = x * node.stride_w + kx * node.dilation_w - node.pad_left;
                if (sx < 0 || sx >= iw) continue;
                const float* source = in(0) + ((b * ih + sy) * iw + sx) * channels;
                const float* weights = filter + (ky * node.kernel_w + kx) * out_channels;
                for (int64_t c = 0; c < out_channels; ++c) pixel[c] += source[c / multiplier] * weights[c];
              }
            }
          }
        }
      });
      break;
    }

    case NodeKind::kConvTranspose2d: {
      const Dims& input = in_dims(0);
      int64_t batch = input[0], ih = input[1], iw = input[2], channels = input[3];
      int64_t oh = out_dims[1], ow = out_dims[2], out_channels = out_dims[3];
      int64_t group_in = node.group_in, group_out = node.group_out;
      const float* filter = in(1);
      const float* bias = node.inputs[2] == kInvalidId ? nullptr : in(2);
      for (int64_t b = 0; b < batch; ++b) {
        float* result = out + b * oh * ow * out_channels;
        for (int64_t p = 0; p < oh * ow; ++p) {
          for (int64_t c = 0; c < out_channels; ++c) result[p * out_channels + c] = bias ? bias[c] : 0.0f;
        }
        for (int64_t y = 0; y < ih; ++y) {
          for (int64_t x = 0; x < iw; ++x) {
            const float* source = in(0) + ((b * ih + y) * iw + x) * channels;
            for (int64_t ky = 0; ky < node.kernel_h; ++ky) {
              int64_t ty = y * node.stride_h + ky * node.dilation_h - node.pad_top;
              if (ty < 0 || ty >= oh) continue;
              for (int64_t kx = 0; kx < node.kernel_w; ++kx) {
                int64_t tx = x * node.stride_w + kx * node.dilation_w - node.pad_left;
                if (tx < 0 || tx >= ow) continue;
                float* target = result + (ty * ow + tx) * out_channels;
                for (int64_t g = 0; g < node.groups; ++g) {
                  for (int64_t o = 0; o < group_out; ++o) {
                    const float* weights = filter + (((g * group_out + o) * node.kernel_h + ky) * node.kernel_w + kx) * group_in;
                    float sum = 0;
                    for (int64_t i = 0; i < group_in; ++i) sum += source[g * group_in + i] * weights[i];
                    target[g * group_out + o] += sum;
                  }
                }
              }
            }
          }
        }
      }
      break;
    }

    case NodeKind::kSoftmax: {
      int64_t inner = out_dims.empty() ? 1 : out_dims.back();
      size_t rows = inner == 0 ? 0 : count / static_cast<size_t>(inner);
      const float* source = in(0);
      parallel_for(pool, rows, 4 * kSoftmaxRows, [&](size_t begin, size_t end) {
        for (size_t r = begin; r < end; r += kSoftmaxRows) {
          softmax_rows(source + r * inner, out + r * inner, std::min(kSoftmaxRows, end - r), inner);
        }
      });
      break;
    }
    case NodeKind::kSigmoid: unary_map(in(0), out, count, [](float x) { return sigmoid_fast(x); }, pool); break;
    case NodeKind::kTanh: unary_map(in(0), out, count, [](float x) { return std::tanh(x); }, pool); break;
    case NodeKind::kGelu:
      unary_map(in(0), out, count, [](float x) { return 0.5f * x * (1.0f + std::erf(x * 0.70710678118654752f)); }, pool);
      break;
    case NodeKind::kHardswish:
      unary_map(in(0), out, count, [](float x) { return x * std::min(std::max(x + 3.0f, 0.0f), 6.0f) / 6.0f; }, pool);
      break;
    case NodeKind::kLeakyRelu: {
      float slope = node.scalar;
      unary_map(in(0), out, count, [slope](float x) { return x < 0 ? x * slope : x; }, pool);
      break;
    }
    case NodeKind::kElu: {
      float alpha = node.scalar;
      unary_map(in(0), out, count, [alpha](float x) { return x < 0 ? alpha * std::expm1(x) : x; }, pool);
      break;
    }
    case NodeKind::kClamp: unary_map(in(0), out, count, [](float x) { return x; }, pool); break;
    case NodeKind::kAbs: unary_map(in(0), out, count, [](float x) { return std::fabs(x); }, pool); break;
    case NodeKind::kNegate: unary_map(in(0), out, count, [](float x) { return -x; }, pool); break;
    case NodeKind::kFloor: unary_map(in(0), out, count, [](float x) { return std::floor(x); }, pool); break;
    case NodeKind::kCeiling: unary_map(in(0), out, count, [](float x) { return std::ceil(x); }, pool); break;
    case NodeKind::kSquare: unary_map(in(0), out, count, [](float x) { return x * x; }, pool); break;
    case NodeKind::kSquareRoot: unary_map(in(0), out, count, [](float x) { return std::sqrt(x); }, pool); break;
    case NodeKind::kReciprocalSquareRoot:
      unary_map(in(0), out, count, [](float x) { return 1.0f / std::sqrt(x); }, pool);
      break;
    case NodeKind::kExp: unary_map(in(0), out, count, [](float x) { return exp_fast(x); }, pool); break;
    case NodeKind::kLog: unary_map(in(0), out, count, [](float x) { return std::log(x); }, pool); break;
    case NodeKind::kSin: unary_map(in(0), out, count, [](float x) { return std::sin(x); }, pool); break;
    case NodeKind::kCos: unary_map(in(0), out, count, [](float x) { return std::cos(x); }, pool); break;
    case NodeKind::kCopy:
    case NodeKind::kConvert:
    case NodeKind::kStaticReshape:
      if (count > 0 && out != in(0)) std::memmove(out, in(0), count * sizeof(float));
      break;

    case NodeKind::kStaticTranspose: {
      const Dims& input = in_dims(0);
      Dims strides = row_major_strides(input);
      Dims permuted(input.size());
      for (size_t i = 0; i < input.size(); ++i) permuted[i] = strides[static_cast<size_t>(node.list_a[i])];
      gather_strided(in(0), out_dims, permuted, out, pool);
      break;
    }
    case NodeKind::kStaticSlice: {
      const Dims& input = in_dims(0);
      Dims strides = row_major_strides(input);
      int64_t offset = 0;
      for (size_t i = 0; i < input.size(); ++i) offset += node.list_a[i] * strides[i];
      gather_strided(in(0) + offset, out_dims, strides, out, pool);
      break;
    }
    case NodeKind::kConcatenate: {
      size_t axis = node.axis;
      int64_t outer = 1, inner = 1;
      for (size_t d = 0; d < axis; ++d) outer *= out_dims[d];
      for (size_t d = axis + 1; d < out_dims.size(); ++d) inner *= out_dims[d];
      int64_t out_row = out_dims[axis] * inner;
      int64_t position = 0;
      for (size_t i = 0; i < node.inputs.size(); ++i) {
        int64_t row = in_dims(i)[axis] * inner;
        for (int64_t o = 0; o < outer; ++o) {
          std::memcpy(out + o * out_row + position, in(i) + o * row, static_cast<size_t>(row) * sizeof(float));
        }
        position += row;
      }
      break;
    }
    case NodeKind::kStaticConstantPad: {
      std::fill(out, out + count, node.scalar);
      Dims strides = row_major_strides(out_dims);
      int64_t offset = 0;
      for (size_t i = 0; i < out_dims.size(); ++i) offset += node.list_a[i] * strides[i];
      // Scatter the input into the padded output: walk the input with the output's strides.
      const Dims& input = in_dims(0);
      Dims in_strides = row_major_strides(input);
      int64_t total = numel(input);
      for (int64_t i = 0; i < total; ++i) {
        int64_t rest = i, target = offset;
        for (size_t d = 0; d < input.size(); ++d) {
          target += (rest / in_strides[d]) * strides[d];
          rest %= in_strides[d];
        }
        out[target] = in(0)[i];
      }
      break;
    }

    case NodeKind::kAvgPooling2d:
    case NodeKind::kMaxPooling2d:
    case NodeKind::kArgMaxPooling2d: {
      const Dims& input = in_dims(0);
      int64_t batch = input[0], ih = input[1], iw = input[2], channels = input[3];
      int64_t oh = out_dims[1], ow = out_dims[2];
      int64_t dilation_h = node.dilation_h == 0 ? 1 : node.dilation_h;
      int64_t dilation_w = node.dilation_w == 0 ? 1 : node.dilation_w;
      uint32_t* indices = node.kind == NodeKind::kArgMaxPooling2d ? reinterpret_cast<uint32_t*>(state.data[node.outputs[1]]) : nullptr;
      bool average = node.kind == NodeKind::kAvgPooling2d;
      for (int64_t b = 0; b < batch; ++b) {
        for (int64_t y = 0; y < oh; ++y) {
          for (int64_t x = 0; x < ow; ++x) {
            float* pixel = out + ((b * oh + y) * ow + x) * channels;
            uint32_t* pixel_index = indices ? indices + ((b * oh + y) * ow + x) * channels : nullptr;
            for (int64_t c = 0; c < channels; ++c) {
              float accumulator = average ? 0.0f : -std::numeric_limits<float>::infinity();
              int64_t valid = 0;
              uint32_t best = 0;
              for (int64_t ky = 0; ky < node.kernel_h; ++ky) {
                int64_t sy = y * node.stride_h + ky * dilation_h - node.pad_top;
                if (sy < 0 || sy >= ih) continue;
                for (int64_t kx = 0; kx < node.kernel_w; ++kx) {
                  int64_t sx = x * node.stride_w + kx * dilation_w - node.pad_left;
                  if (sx < 0 || sx >= iw) continue;
                  float value = in(0)[((b * ih + sy) * iw + sx) * channels + c];
                  ++valid;
                  if (average) {
                    accumulator += value;
                  } else if (value > accumulator) {
                    accumulator = value;
                    // XNNPACK numbers window cells column by column (its argmax pooling tester).
                    // NOTE: ties keep the first cell in row order here but in column order in
                    // XNNPACK; the two differ only for windows with several rows and columns.
                    best = static_cast<uint32_t>(kx * node.kernel_h + ky);
                  }
                }
              }
              // XNNPACK's average pooling divides by the number of window cells inside the input.
              if (!average) {
                pixel[c] = accumulator;
              } else if (valid > 0) {
                pixel[c] = accumulator / static_cast<float>(valid);
              } else {
                pixel[c] = 0.0f;
              }
              if (pixel_index) pixel_index[c] = best;
            }
          }
        }
      }
      break;
    }
    case NodeKind::kGlobalAvgPooling2d: {
      const Dims& input = in_dims(0);
      size_t rank = input.size();
      int64_t channels = input[rank - 1];
      int64_t window = input[rank - 2] * input[rank - 3];
      int64_t outer = numel(input) / std::max<int64_t>(1, window * channels);
      for (int64_t o = 0; o < outer; ++o) {
        float* target = out + o * channels;
        std::fill(target, target + channels, 0.0f);
        for (int64_t p = 0; p < window; ++p) {
          const float* source = in(0) + (o * window + p) * channels;
          for (int64_t c = 0; c < channels; ++c) target[c] += source[c];
        }
        for (int64_t c = 0; c < channels; ++c) target[c] /= static_cast<float>(window);
      }
      break;
    }
    case NodeKind::kStaticResizeBilinear2d: {
      const Dims& input = in_dims(0);
      int64_t batch = input[0], ih = input[1], iw = input[2], channels = input[3];
      int64_t oh = out_dims[1], ow = out_dims[2];
      bool align_corners = (node.flags & kFlagAlignCorners) != 0;
      bool half_pixel = !align_corners && (node.flags & kFlagTensorflowLegacyMode) == 0;
      auto source_coordinate = [&](int64_t target, int64_t in_size, int64_t out_size) {
        if (align_corners) return out_size > 1 ? static_cast<float>(target) * (in_size - 1) / (out_size - 1) : 0.0f;
        float scale = static_cast<float>(in_size) / static_cast<float>(out_size);
        float coordinate = half_pixel ? (static_cast<float>(target) + 0.5f) * scale - 0.5f : static_cast<float>(target) * scale;
        return std::max(coordinate, 0.0f);
      };
      for (int64_t b = 0; b < batch; ++b) {
        for (int64_t y = 0; y < oh; ++y) {
          float sy = source_coordinate(y, ih, oh);
          int64_t y0 = std::min<int64_t>(static_cast<int64_t>(sy), ih - 1), y1 = std::min<int64_t>(y0 + 1, ih - 1);
          float wy = sy - static_cast<float>(y0);
          for (int64_t x = 0; x < ow; ++x) {
            float sx = source_coordinate(x, iw, ow);
            int64_t x0 = std::min<int64_t>(static_cast<int64_t>(sx), iw - 1), x1 = std::min<int64_t>(x0 + 1, iw - 1);
            float wx = sx - static_cast<float>(x0);
            const float* p00 = in(0) + ((b * ih + y0) * iw + x0) * channels;
            const float* p01 = in(0) + ((b * ih + y0) * iw + x1) * channels;
            const float* p10 = in(0) + ((b * ih + y1) * iw + x0) * channels;
            const float* p11 = in(0) + ((b * ih + y1) * iw + x1) * channels;
            float* target = out + ((b * oh + y) * ow + x) * channels;
            for (int64_t c = 0; c < channels; ++c) {
              float top = p00[c] + (p01[c] - p00[c]) * wx;
              float bottom = p10[c] + (p11[c] - p10[c]) * wx;
              target[c] = top + (bottom - top) * wy;
            }
          }
        }
      }
      break;
    }

    case NodeKind::kScaledDotProductAttention: {
      const Dims& q_dims = in_dims(0);
      const Dims& k_dims = in_dims(1);
      const Dims& v_dims = in_dims(2);
      int64_t t = q_dims[q_dims.size() - 2], c = q_dims.back();
      int64_t u = k_dims[k_dims.size() - 2], d = v_dims.back();
      // The leading dims, not numel / (t * c), which divides by zero for an empty query.
      int64_t heads = numel(Dims(q_dims.begin(), q_dims.end() - 2));
      EI_RETURN_IF_ERROR(reserve_scratch(state, static_cast<uint64_t>(t) * static_cast<uint64_t>(u + c), index, node));
      float* logits = state.scratch.data();
      float* scaled = logits + t * u;
      for (int64_t h = 0; h < heads; ++h) {
        const float* q = in(0) + h * t * c;
        for (int64_t i = 0; i < t; ++i) {
          for (int64_t j = 0; j < c; ++j) scaled[i * c + j] = q[i * c + j] * in(3)[j];
        }
        gemm(pool, t, u, c, scaled, c, in(1) + h * u * c, c, true, logits, u);
        for (int64_t i = 0; i < t; ++i) {
          float* row = logits + i * u;
          float max_value = -std::numeric_limits<float>::infinity();
          for (int64_t j = 0; j < u; ++j) {
            row[j] += in(4)[i * u + j];
            max_value = std::max(max_value, row[j]);
          }
          float sum = 0;
          for (int64_t j = 0; j < u; ++j) {
            row[j] = exp_fast(row[j] - max_value);
            sum += row[j];
          }
          for (int64_t j = 0; j < u; ++j) row[j] /= sum;
        }
        gemm(pool, t, d, u, logits, u, in(2) + h * u * d, d, false, out + h * t * d, d);
      }
      break;
    }
  }

  clamp_range(out, count, low, high);
  return Status::Ok();
}

}  // namespace ei::xnn
