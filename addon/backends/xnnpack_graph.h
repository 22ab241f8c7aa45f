// The XnnpackBackend delegate: a graph interpreter for the XNNPACK subgraphs that upstream
// ExecuTorch's XNNPACK partitioner serializes into delegate payloads. It does not use the
// XNNPACK library: each node type is implemented here (float32), with matrix products in
// the platform BLAS, so that payloads written by upstream run unchanged.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "backends/packed_gemm.h"
#include "runtime/backend.h"
#include "runtime/thread_pool.h"

namespace ei::xnn {

constexpr uint32_t kInvalidId = 0xFFFFFFFFu;
// XNNPACK's XNN_MAX_TENSOR_DIMS.
constexpr size_t kMaxDims = 6;

// Flag bits from XNNPACK's include/xnnpack.h.
constexpr uint32_t kValueExternalInput = 0x1;
constexpr uint32_t kValueExternalOutput = 0x2;
constexpr uint32_t kFlagTransposeWeights = 0x1;  // FullyConnected filter is [in, out]; BMM B is [.., N, K]
constexpr uint32_t kFlagTensorflowSamePadding = 0x4;
constexpr uint32_t kFlagTensorflowLegacyMode = 0x4;  // resize bilinear without half-pixel centers
constexpr uint32_t kFlagAlignCorners = 0x8;
constexpr uint32_t kFlagKeepDims = 0x40;

using Dims = std::vector<int64_t>;

enum class NodeKind : uint8_t {
  kAdd, kSubtract, kMultiply, kDivide, kMinimum, kMaximum, kPRelu,
  kFullyConnected, kBatchMatrixMultiply,
  kConv2d, kDepthwiseConv2d, kConvTranspose2d,
  kSoftmax, kSigmoid, kTanh, kGelu, kHardswish, kLeakyRelu, kElu, kClamp,
  kAbs, kNegate, kFloor, kCeiling, kSquare, kSquareRoot, kReciprocalSquareRoot,
  kExp, kLog, kSin, kCos, kCopy, kConvert,
  kStaticTranspose, kStaticReshape, kStaticSlice, kConcatenate, kStaticConstantPad,
  kAvgPooling2d, kMaxPooling2d, kGlobalAvgPooling2d, kArgMaxPooling2d, kStaticResizeBilinear2d,
  kScaledDotProductAttention,
};

const char* node_kind_name(NodeKind kind);

struct Value {
  Dims dims;                     // as serialized; for externals the planned (maximum) shape
  const float* constant = nullptr;
  size_t constant_bytes = 0;
  uint32_t external_id = kInvalidId;
  bool external_input = false;
  bool external_output = false;
  int32_t first_use = -1;        // node index that produces it (-1: input or constant)
  int32_t last_use = -1;         // last node index that reads it
  int32_t allocated_at = -1;     // when set, memory planning allocates it at this node instead
};

// StaticReshape and StaticTranspose nodes between a BatchMatrixMultiply and the value it reads
// or writes (see Graph::elide_layout_nodes).
struct LayoutChain {
  uint32_t value = kInvalidId;  // the value at the far end; kInvalidId: no chain
  std::vector<uint32_t> nodes;  // node indices, in execution order
};

// A tensor seen through a chain: element i is at sum(i_d * strides_d) of the value's memory.
struct StridedView {
  Dims dims;
  Dims strides;
};

struct Node {
  NodeKind kind;
  std::vector<uint32_t> inputs;  // dense value indices; kInvalidId for an absent optional input
  std::vector<uint32_t> outputs;
  uint32_t flags = 0;
  float output_min = -std::numeric_limits<float>::infinity();
  float output_max = std::numeric_limits<float>::infinity();
  uint32_t debug_handle = 0;
  float scalar = 0;              // LeakyReLU slope, ELU alpha, pad value
  uint32_t axis = 0;             // Concatenate
  std::vector<int64_t> list_a;   // perm, new_shape, offsets, pre paddings
  std::vector<int64_t> list_b;   // slice sizes, post paddings
  // Convolution and pooling parameters.
  uint32_t pad_top = 0, pad_right = 0, pad_bottom = 0, pad_left = 0;
  uint32_t kernel_h = 1, kernel_w = 1, stride_h = 1, stride_w = 1, dilation_h = 1, dilation_w = 1;
  uint32_t groups = 1, group_in = 0, group_out = 0, adjust_h = 0, adjust_w = 0;
  uint32_t new_h = 0, new_w = 0;
  int32_t packed = -1;           // index into Graph::packed_ when the weights were packed at load
  // FullyConnected only: set at load when the nodes after it computed this function of its
  // output (see Graph::fuse_nodes); applied before the clamp.
  Activation activation;
  // Set at load (Graph::limit_rows): only the first live_rows rows of the output (seen as
  // [numel / last dim, last dim]) are read after this node, so only those are computed.
  // 0: all of them.
  int64_t live_rows = 0;
  // BatchMatrixMultiply only, set at load: the chains it reads inputs 0 and 1 and writes its
  // output ([2]) through, so the chains' nodes need not copy.
  LayoutChain chains[3];
  // Set at load on the nodes of such a chain, on an Add folded into a FullyConnected and on the
  // nodes of a fused attention block: the node that does their work. A call skips the node
  // when that node's takes_over is at least elided_level.
  int32_t elided_by = -1;
  uint8_t elided_level = 1;
  // BatchMatrixMultiply only, set at load (Graph::fuse_attention): the Multiply by a
  // one-element constant, the Softmax and the second BatchMatrixMultiply of the attention block
  // that this product starts, or -1 when it starts none. A call whose shapes allow it runs the
  // block as one pass per head (takes_over 2).
  int32_t attention_multiply = -1;
  int32_t attention_softmax = -1;
  int32_t attention_product = -1;
  uint32_t attention_scale = kInvalidId;  // the Multiply's one-element constant
  // FullyConnected only, set at load (Graph::fold_residual_adds): the value that the folded Add
  // after it adds to its output, and the Add's output, which the FullyConnected then writes.
  uint32_t residual = kInvalidId;
  uint32_t residual_output = kInvalidId;
  // Values that this node writes besides its outputs (the far end of an output chain), which
  // memory planning allocates at this node.
  std::vector<uint32_t> early_outputs;
};

// Everything a call needs besides the graph: value shapes, pointers and scratch memory.
struct CallState {
  std::vector<Dims> dims;
  std::vector<float*> data;
  std::shared_ptr<std::byte[]> arena;
  size_t arena_bytes = 0;
  std::vector<float> scratch;  // per-node temporary space (im2col columns, attention logits)
  // Per node: 1 when this call runs the node's combined form (a BatchMatrixMultiply through its
  // layout chains, a FullyConnected with its residual) and skips the nodes whose elided_by is
  // it. 2 when it also runs the attention block that the node starts. 0 when this call's shapes
  // do not allow that, so those nodes run.
  std::vector<uint8_t> takes_over;
  // The external input shapes (rank, then dims, per input) that the fields above were computed
  // for, or empty when they are not valid.
  std::vector<int64_t> input_shapes;
  // The thread that last ran a call with this state.
  std::thread::id thread;
};

class Graph final : public DelegateHandle {
 public:
  static Result<std::unique_ptr<Graph>> load(const BackendInitContext& context);

  Status execute(KernelContext& context, std::span<EValue* const> args) const override;
  // Runs the calls node by node, side by side: FullyConnected nodes with packed weights run
  // as one product over every call's rows, and other nodes one call per thread.
  void execute_batch(ThreadPool* pool, std::span<const std::span<EValue* const>> args,
                     std::span<Status> statuses) const override;

 private:
  // Folds node sequences into the node before them where the result is bit for bit the same:
  // FullyConnected, Multiply by a one-element constant, Sigmoid and Multiply by the first
  // output (transformers' QuickGELU) become one FullyConnected with an activation.
  void fuse_nodes();
  // Recomputes each value's first and last use after nodes changed.
  void compute_lifetimes();
  // Marks the nodes whose outputs are read only in part. An external output with a row limit
  // (BackendInitContext::arg_row_limits) needs only those rows from the row-wise nodes before
  // it: FullyConnected, and elementwise nodes over operands of its shape. The walk back stops
  // at the first node that mixes rows.
  void limit_rows(std::span<const int64_t> arg_row_limits);
  // Finds StaticReshape and StaticTranspose nodes that only move a BatchMatrixMultiply's
  // operands or result between layouts (attention heads split and merged), and lets the
  // product read and write through them with strides instead of copying. Extends lifetimes
  // so that the chains' far ends stay in memory for the product.
  void elide_layout_nodes();
  // Folds an Add of a FullyConnected's output and a value of the same shape (a residual
  // connection) into the FullyConnected, which adds the value as it writes its output.
  void fold_residual_adds();
  // Finds attention blocks: a BatchMatrixMultiply whose scores go through a Multiply by a
  // one-element constant and a Softmax into a second BatchMatrixMultiply, with nothing else
  // reading them. The first product then runs the block (see attention.h) for calls whose
  // shapes the fused kernel takes. Needs elide_layout_nodes() first.
  void fuse_attention();
  // Computes this call's strided views of a BatchMatrixMultiply's operands and result. Returns
  // false when strides cannot express a chain for these shapes.
  bool chain_views(const Node& node, const CallState& state, StridedView views[3]) const;
  // Views and sizes of the attention block that a product starts, for one call.
  struct AttentionViews {
    StridedView first[3];   // queries, keys, scores
    StridedView second[3];  // probabilities, values, result
    int64_t heads, m, n, dk, dv;
    bool keys_transposed;   // keys [.., n, dk] (the first product's transpose flag), else [.., dk, n]
  };
  // Computes the views of the block that node `index` starts. Returns false when strides cannot
  // express a chain, or when the operands' shapes do not match one another.
  bool attention_views(size_t index, const CallState& state, AttentionViews& views) const;
  // Returns true when the fused kernel takes this call's attention block that node `index`
  // starts.
  bool attention_fits(size_t index, const CallState& state) const;
  // Runs the attention block that node `index` starts as one pass per head.
  Status run_attention(size_t index, CallState& state) const;
  // Packs the constant weights of FullyConnected and Conv2d nodes for packed_linear().
  void pack_constant_weights(const BackendInitContext& context);
  std::unique_ptr<CallState> acquire_state() const;
  void release_state(std::unique_ptr<CallState> state) const;
  // Binds one call's arguments to a state: shapes, the program's tensors and the arena. A state
  // prepared before for the same input shapes only binds the tensors.
  Status prepare_call(CallState& state, std::span<EValue* const> args) const;
  // Resizes the program's output tensors to the state's shapes and points the outputs at them.
  Status bind_outputs(CallState& state, std::span<EValue* const> args) const;
  // A FullyConnected node's product sizes for one call: rows m, outputs n, inner k.
  struct LinearShape {
    int64_t m, n, k;
  };
  LinearShape linear_shape(const Node& node, const CallState& state) const;
  // Returns the rows that FullyConnected node `index` computes for one call, with the residual
  // when this call folds the Add after it.
  RowSegment linear_segment(size_t index, const CallState& state) const;
  // Runs FullyConnected node `index` (packed weights) for several calls in one pass.
  void run_linear_batch(size_t index, std::span<CallState* const> states, ThreadPool* pool) const;
  // Runs Conv2d node `index` (packed weights) for several calls: im2col per call, then one
  // product over the rows of every call.
  void run_conv_batch(size_t index, std::span<CallState* const> states, std::span<Status> statuses,
                      ThreadPool* pool) const;
  Status infer_shapes(CallState& state) const;
  // Offsets of intermediate values in one arena for the given shapes; returns the arena size.
  size_t plan_intermediates(const std::vector<Dims>& dims, std::vector<size_t>& offsets) const;
  // Plans intermediates for the serialized shapes, which calls reuse while their shapes fit.
  void plan_at_load();
  Status run_node(size_t index, CallState& state, ThreadPool* pool) const;
  // Grows the call's scratch buffer to `floats`, within the workspace limit.
  Status reserve_scratch(CallState& state, uint64_t floats, size_t index, const Node& node) const;

  std::vector<Value> values_;
  std::vector<Node> nodes_;
  std::vector<uint32_t> inputs_;   // value indices of external inputs, by external id
  std::vector<uint32_t> outputs_;  // value indices of external outputs, by external id
  uint32_t extern_count_ = 0;
  std::vector<PackedWeights> packed_;
  uint64_t max_workspace_bytes_ = 0;
  std::vector<size_t> planned_offsets_;
  std::vector<int64_t> planned_numel_;
  size_t planned_bytes_ = 0;

  mutable std::mutex states_mutex_;
  mutable std::vector<std::unique_ptr<CallState>> states_;
};

const Backend* xnnpack_backend();

}  // namespace ei::xnn
