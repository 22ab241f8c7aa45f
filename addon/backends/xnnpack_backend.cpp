// Loading XnnpackBackend payloads: the 32-byte XH00 header, the XNNGraph flatbuffer
// (identifiers XN00 and XN01), constants inline or in the program's named data, and a check
// of every id, dimension and parameter, so that execution never meets an invalid index.
#include <cstring>
#include <limits>
#include <unordered_map>

#include "backends/attention.h"
#include "backends/blas.h"
#include "backends/xnnpack_graph.h"
#include "runtime/bytes.h"
#include "xnnpack_generated.h"

namespace ei::xnn {

namespace {

using flatbuffers::uoffset_t;

constexpr size_t kHeaderSize = 32;
constexpr size_t kHeaderMinimumLength = 30;

const char* datatype_name(ei_xnn::XNNDatatype type) {
  const char* name = ei_xnn::EnumNameXNNDatatype(type);
  return (name != nullptr && name[0] != '\0') ? name : "unknown";
}

Status malformed(const std::string& message) { return Status(ErrorCode::kDelegateFailed, message); }

// Returns true when a node has no output_min_max clamp.
bool unclamped(const Node& node) {
  return node.output_min == -std::numeric_limits<float>::infinity() &&
         node.output_max == std::numeric_limits<float>::infinity();
}

// Returns the nodes that read each value, in node order.
std::vector<std::vector<uint32_t>> value_readers(const std::vector<Node>& nodes, size_t value_count) {
  std::vector<std::vector<uint32_t>> readers(value_count);
  for (uint32_t n = 0; n < nodes.size(); ++n) {
    for (uint32_t input : nodes[n].inputs) {
      if (input != kInvalidId) readers[input].push_back(n);
    }
  }
  return readers;
}

class XnnpackBackend final : public Backend {
 public:
  std::string_view id() const override { return "XnnpackBackend"; }
  Result<std::unique_ptr<DelegateHandle>> init(const BackendInitContext& context) const override {
    EI_ASSIGN_OR_RETURN(auto graph, Graph::load(context));
    return std::unique_ptr<DelegateHandle>(std::move(graph));
  }
};

}  // namespace

const Backend* xnnpack_backend() {
  static const XnnpackBackend backend;
  return &backend;
}

const char* node_kind_name(NodeKind kind) {
  static const char* const kNames[] = {
      "Add", "Subtract", "Multiply", "Divide", "Minimum", "Maximum", "PReLU",
      "FullyConnected", "BatchMatrixMultiply",
      "Conv2d", "DepthwiseConv2d", "ConvTranspose2d",
      "Softmax", "Sigmoid", "Tanh", "Gelu", "Hardswish", "LeakyReLU", "ELU", "Clamp",
      "Abs", "Negate", "Floor", "Ceiling", "Square", "SquareRoot", "ReciprocalSquareRoot",
      "Exp", "Log", "Sin", "Cos", "Copy", "Convert",
      "StaticTranspose", "StaticReshape", "StaticSlice", "Concatenate", "StaticConstantPad",
      "AvgPooling2d", "MaxPooling2d", "GlobalAvgPooling2d", "ArgMaxPooling2d", "StaticResizeBilinear2D",
      "ScaledDotProductAttention",
  };
  return kNames[static_cast<size_t>(kind)];
}

Result<std::unique_ptr<Graph>> Graph::load(const BackendInitContext& context) {
  std::span<const uint8_t> payload = context.processed;

  // The header. Payloads without it (a bare flatbuffer) are what the oldest exporters wrote.
  const uint8_t* flatbuffer = payload.data();
  uint64_t flatbuffer_size = payload.size();
  const uint8_t* constant_data = nullptr;
  uint64_t constant_size = 0;
  if (payload.size() >= 8 && std::memcmp(payload.data() + 4, "XH00", 4) == 0) {
    if (payload.size() < kHeaderSize) return malformed("XNNPACK payload header is truncated");
    uint16_t length = read_le<uint16_t>(payload.data() + 8);
    if (length < kHeaderMinimumLength) return malformed("XNNPACK header length " + std::to_string(length) + " is below 30");
    uint32_t fb_offset = read_le<uint32_t>(payload.data() + 10);
    uint32_t fb_size = read_le<uint32_t>(payload.data() + 14);
    uint32_t data_offset = read_le<uint32_t>(payload.data() + 18);
    uint64_t data_size = read_le<uint64_t>(payload.data() + 22);
    if (!range_fits(fb_offset, fb_size, payload.size())) {
      return malformed(std::string("XNNPACK flatbuffer (offset ") + std::to_string(fb_offset) + ", size " +
                       std::to_string(fb_size) + ") runs past the end of the " + std::to_string(payload.size()) +
                       "-byte payload");
    }
    if (!range_fits(data_offset, data_size, payload.size())) {
      return malformed(std::string("XNNPACK constant data (offset ") + std::to_string(data_offset) + ", size " +
                       std::to_string(data_size) + ") runs past the end of the " + std::to_string(payload.size()) +
                       "-byte payload");
    }
    flatbuffer = payload.data() + fb_offset;
    flatbuffer_size = fb_size;
    constant_data = payload.data() + data_offset;
    constant_size = data_size;
  }
  if (flatbuffer_size < 8) return malformed("XNNPACK payload is too short for a graph");
  if (reinterpret_cast<uintptr_t>(flatbuffer) % 4 != 0) {
    return malformed("XNNPACK graph flatbuffer is not 4-byte aligned in the file");
  }
  if (std::memcmp(flatbuffer + 4, "XN00", 4) != 0 && std::memcmp(flatbuffer + 4, "XN01", 4) != 0) {
    return malformed(std::string("XNNPACK graph identifier is '") +
                     std::string(reinterpret_cast<const char*>(flatbuffer + 4), 4) + "', expected XN00 or XN01");
  }
  flatbuffers::Verifier verifier(flatbuffer, flatbuffer_size, 64, 1000000, true);
  if (!verifier.VerifyBuffer<ei_xnn::XNNGraph>(nullptr)) {
    return malformed("XNNPACK graph flatbuffer failed verification: the payload is corrupt");
  }
  const auto* graph = ei_xnn::GetXNNGraph(flatbuffer);

  auto result = std::unique_ptr<Graph>(new Graph());
  Graph& self = *result;

  // Values: dense indices for the ids that nodes use.
  std::unordered_map<uint32_t, uint32_t> index_of;
  const auto* values = graph->xvalues();
  size_t value_count = values == nullptr ? 0 : values->size();
  self.extern_count_ = graph->num_externs();
  // Every external is a value; a larger count is corrupt and would size the tables below.
  if (self.extern_count_ > value_count) {
    return malformed("XNNPACK graph declares " + std::to_string(self.extern_count_) + " externals but has only " +
                     std::to_string(value_count) + " values");
  }
  for (size_t i = 0; i < value_count; ++i) {
    const auto* flat = values->Get(static_cast<uoffset_t>(i));
    const ei_xnn::XNNTensorValue* tensor = nullptr;
    if (flat->xvalue_union_type() == ei_xnn::XValueUnion::XNNTensorValue) {
      tensor = flat->xvalue_union_as_XNNTensorValue();
    } else if (flat->xvalue_union_type() == ei_xnn::XValueUnion::XNNQuantizedTensorValue) {
      const auto* quantized = flat->xvalue_union_as_XNNQuantizedTensorValue();
      const auto* base = quantized == nullptr ? nullptr : quantized->tensor_value();
      return Status(ErrorCode::kUnsupportedDtype,
                    std::string("XNNPACK value ") + std::to_string(i) + " is quantized (" +
                        (base == nullptr ? "unknown" : datatype_name(base->datatype())) +
                        "); quantized XNNPACK graphs are not supported yet, so use the model's fp32 variant");
    }
    // The verifier accepts a union type whose table is absent, so check the table itself.
    if (tensor == nullptr) return malformed("XNNPACK value " + std::to_string(i) + " has no tensor");
    if (tensor->datatype() != ei_xnn::XNNDatatype::xnn_datatype_fp32) {
      return Status(ErrorCode::kUnsupportedDtype, std::string("XNNPACK value ") + std::to_string(i) + " has datatype " +
                                                      datatype_name(tensor->datatype()) +
                                                      "; only fp32 XNNPACK graphs are supported yet, so use the "
                                                      "model's fp32 variant");
    }
    if (tensor->dq_datatype() != ei_xnn::XNNDatatype::xnn_datatype_invalid) {
      return Status(ErrorCode::kUnsupportedDtype, std::string("XNNPACK value ") + std::to_string(i) +
                                                      " is dynamically quantized to " +
                                                      datatype_name(tensor->dq_datatype()) +
                                                      "; quantized XNNPACK graphs are not supported yet");
    }
    if ((tensor->flags() & ~(kValueExternalInput | kValueExternalOutput)) != 0) {
      return malformed("XNNPACK value " + std::to_string(i) + " has unknown flag bits " + std::to_string(tensor->flags()));
    }
    if (index_of.count(tensor->id_out()) != 0) {
      return malformed("XNNPACK value id " + std::to_string(tensor->id_out()) + " is defined twice");
    }

    Value value;
    if (tensor->dims() != nullptr) {
      if (tensor->dims()->size() > kMaxDims) {
        return malformed("XNNPACK value " + std::to_string(i) + " has " + std::to_string(tensor->dims()->size()) +
                         " dimensions, above XNNPACK's limit of 6");
      }
      for (uint32_t dim : *tensor->dims()) value.dims.push_back(dim);
    }
    int64_t numel = checked_numel(value.dims);
    if (numel < 0 || numel > (int64_t{1} << 40)) {
      return malformed("XNNPACK value " + std::to_string(i) + " has too many elements");
    }
    value.external_input = (tensor->flags() & kValueExternalInput) != 0;
    value.external_output = (tensor->flags() & kValueExternalOutput) != 0;
    if (value.external_input || value.external_output) {
      value.external_id = tensor->external_id();
      if (value.external_id >= self.extern_count_) {
        return malformed("XNNPACK value " + std::to_string(i) + " has external id " +
                         std::to_string(value.external_id) + " but the graph declares " +
                         std::to_string(self.extern_count_) + " externals");
      }
    }

    uint32_t buffer_index = tensor->constant_buffer_idx();
    if (buffer_index != 0) {
      if (value.external_input || value.external_output) {
        return malformed("XNNPACK value " + std::to_string(i) + " is both constant and external");
      }
      size_t needed = static_cast<size_t>(numel) * sizeof(float);
      const auto* offsets = graph->constant_data();
      if (offsets != nullptr && offsets->size() > 0) {
        if (buffer_index >= offsets->size()) {
          return malformed("XNNPACK constant index " + std::to_string(buffer_index) + " is out of range (" +
                           std::to_string(offsets->size()) + " entries)");
        }
        const auto* entry = offsets->Get(buffer_index);
        if (entry->named_key() != nullptr && entry->offset() == std::numeric_limits<uint64_t>::max()) {
          if (context.named_data == nullptr) return malformed("XNNPACK constant refers to named data, which is absent");
          auto bytes = context.named_data->get(entry->named_key()->string_view());
          if (!bytes.ok()) return malformed("XNNPACK constant: " + bytes.status().message());
          if (bytes->size() < needed) {
            return malformed("named data '" + entry->named_key()->str() + "' holds " + std::to_string(bytes->size()) +
                             " bytes but XNNPACK value " + std::to_string(i) + " needs " + std::to_string(needed));
          }
          value.constant = reinterpret_cast<const float*>(bytes->data());
          value.constant_bytes = bytes->size();
        } else {
          if (constant_data == nullptr || !range_fits(entry->offset(), needed, constant_size)) {
            return malformed("XNNPACK constant " + std::to_string(buffer_index) + " (offset " +
                             std::to_string(entry->offset()) + ", " + std::to_string(needed) +
                             " bytes) runs past the payload's constant data (" + std::to_string(constant_size) +
                             " bytes)");
          }
          value.constant = reinterpret_cast<const float*>(constant_data + entry->offset());
          value.constant_bytes = needed;
        }
      } else if (graph->constant_buffer() != nullptr && buffer_index < graph->constant_buffer()->size()) {
        const auto* storage = graph->constant_buffer()->Get(buffer_index)->storage();
        if (storage == nullptr || storage->size() < needed) {
          return malformed("XNNPACK constant buffer " + std::to_string(buffer_index) + " is smaller than its value");
        }
        value.constant = reinterpret_cast<const float*>(storage->data());
        value.constant_bytes = storage->size();
      } else {
        return malformed("XNNPACK constant index " + std::to_string(buffer_index) + " has no data");
      }
      if (reinterpret_cast<uintptr_t>(value.constant) % alignof(float) != 0) {
        return malformed("XNNPACK constant " + std::to_string(buffer_index) + " is not 4-byte aligned");
      }
    }
    index_of[tensor->id_out()] = static_cast<uint32_t>(self.values_.size());
    self.values_.push_back(std::move(value));
  }

  // Externals by external id.
  self.inputs_.assign(self.extern_count_, kInvalidId);
  self.outputs_.assign(self.extern_count_, kInvalidId);
  size_t input_count = 0;
  for (uint32_t i = 0; i < self.values_.size(); ++i) {
    const Value& value = self.values_[i];
    if (!value.external_input && !value.external_output) continue;
    auto& slot = value.external_input ? self.inputs_ : self.outputs_;
    if (self.inputs_[value.external_id] != kInvalidId || self.outputs_[value.external_id] != kInvalidId) {
      return malformed("XNNPACK external id " + std::to_string(value.external_id) + " is used twice");
    }
    slot[value.external_id] = i;
    if (value.external_input) ++input_count;
  }
  // Upstream numbers external inputs first, then outputs.
  for (uint32_t id = 0; id < self.extern_count_; ++id) {
    bool is_input = self.inputs_[id] != kInvalidId;
    bool is_output = self.outputs_[id] != kInvalidId;
    if (!is_input && !is_output) return malformed("XNNPACK external id " + std::to_string(id) + " has no value");
    if (is_input != (id < input_count)) {
      return malformed("XNNPACK external ids do not list the inputs before the outputs");
    }
  }

  // Nodes.
  auto resolve = [&](uint32_t id, bool optional, uint32_t node, const char* role) -> Result<uint32_t> {
    if (optional && id == kInvalidId) return kInvalidId;
    auto found = index_of.find(id);
    if (found == index_of.end()) {
      return malformed("XNNPACK node " + std::to_string(node) + ": " + role + " id " + std::to_string(id) +
                       " is not a defined value");
    }
    return found->second;
  };
  const auto* nodes = graph->xnodes();
  size_t node_count = nodes == nullptr ? 0 : nodes->size();
  for (uint32_t n = 0; n < node_count; ++n) {
    const auto* flat = nodes->Get(n);
    Node node{};
    node.debug_handle = flat->debug_handle();
    if (flat->output_min_max() != nullptr) {
      node.output_min = flat->output_min_max()->output_min();
      node.output_max = flat->output_min_max()->output_max();
      if (!(node.output_min <= node.output_max)) {
        return malformed("XNNPACK node " + std::to_string(n) + " has output_min above output_max");
      }
    }
    auto add_input = [&](uint32_t id, bool optional, const char* role) -> Status {
      EI_ASSIGN_OR_RETURN(uint32_t index, resolve(id, optional, n, role));
      node.inputs.push_back(index);
      return Status::Ok();
    };
    auto add_output = [&](uint32_t id) -> Status {
      EI_ASSIGN_OR_RETURN(uint32_t index, resolve(id, false, n, "output"));
      if (self.values_[index].constant != nullptr || self.values_[index].external_input) {
        return malformed("XNNPACK node " + std::to_string(n) + " writes to a constant or an input");
      }
      node.outputs.push_back(index);
      return Status::Ok();
    };
    auto binary = [&](NodeKind kind, const ei_xnn::_XNNNode2x1* args) -> Status {
      node.kind = kind;
      node.flags = args->flags();
      EI_RETURN_IF_ERROR(add_input(args->input1_id(), false, "input 1"));
      EI_RETURN_IF_ERROR(add_input(args->input2_id(), false, "input 2"));
      return add_output(args->output_id());
    };
    // Most nodes read one input and write one output.
    auto connect = [&](uint32_t input, uint32_t output) -> Status {
      EI_RETURN_IF_ERROR(add_input(input, false, "input"));
      return add_output(output);
    };
    auto unary = [&](NodeKind kind, const ei_xnn::_XNNNode1x1* args) -> Status {
      node.kind = kind;
      node.flags = args->flags();
      return connect(args->input_id(), args->output_id());
    };
    auto conv = [&](NodeKind kind, const ei_xnn::_XNNNodeConv* args) -> Status {
      node.kind = kind;
      node.flags = args->flags();
      node.pad_top = args->padding_top();
      node.pad_right = args->padding_right();
      node.pad_bottom = args->padding_bottom();
      node.pad_left = args->padding_left();
      node.kernel_h = args->kernel_height();
      node.kernel_w = args->kernel_width();
      node.stride_h = args->subsampling_height();
      node.stride_w = args->subsampling_width();
      node.dilation_h = args->dilation_height();
      node.dilation_w = args->dilation_width();
      node.groups = args->groups();
      node.group_in = args->group_input_channels();
      node.group_out = args->group_output_channels();
      node.adjust_h = args->adjustment_height();
      node.adjust_w = args->adjustment_width();
      EI_RETURN_IF_ERROR(add_input(args->input1_id(), false, "input"));
      EI_RETURN_IF_ERROR(add_input(args->filter_id(), false, "filter"));
      EI_RETURN_IF_ERROR(add_input(args->bias_id(), true, "bias"));
      return add_output(args->output_id());
    };
    auto pooling = [&](NodeKind kind, const ei_xnn::_XNNPooling2D* args) -> Status {
      node.kind = kind;
      node.flags = args->flags();
      node.pad_top = args->padding_top();
      node.pad_right = args->padding_right();
      node.pad_bottom = args->padding_bottom();
      node.pad_left = args->padding_left();
      node.kernel_h = args->pooling_height();
      node.kernel_w = args->pooling_width();
      node.stride_h = args->stride_height();
      node.stride_w = args->stride_width();
      node.dilation_h = args->dilation_height();
      node.dilation_w = args->dilation_width();
      return connect(args->input_id(), args->output_id());
    };
    auto concatenate = [&](const ei_xnn::_XNNCat* args, int count) -> Status {
      node.kind = NodeKind::kConcatenate;
      node.flags = args->flags();
      node.axis = args->axis();
      const uint32_t ids[5] = {args->input1_id(), args->input2_id(), args->input3_id(), args->input4_id(),
                               args->input5_id()};
      for (int i = 0; i < count; ++i) EI_RETURN_IF_ERROR(add_input(ids[i], false, "input"));
      return add_output(args->output_id());
    };
    auto list = [](const flatbuffers::Vector<uint32_t>* items) {
      std::vector<int64_t> out;
      if (items != nullptr) out.assign(items->begin(), items->end());
      return out;
    };

    if (flat->xnode_union() == nullptr) {
      return malformed("XNNPACK node " + std::to_string(n) + " has no parameters for its type " +
                       std::to_string(static_cast<int>(flat->xnode_union_type())));
    }
    Status status;
    using U = ei_xnn::XNodeUnion;
    switch (flat->xnode_union_type()) {
      case U::XNNAdd: status = binary(NodeKind::kAdd, flat->xnode_union_as_XNNAdd()); break;
      case U::XNNSubtract: status = binary(NodeKind::kSubtract, flat->xnode_union_as_XNNSubtract()); break;
      case U::XNNMultiply: status = binary(NodeKind::kMultiply, flat->xnode_union_as_XNNMultiply()); break;
      case U::XNNDiv: status = binary(NodeKind::kDivide, flat->xnode_union_as_XNNDiv()); break;
      case U::XNNMinimum: status = binary(NodeKind::kMinimum, flat->xnode_union_as_XNNMinimum()); break;
      case U::XNNMaximum: status = binary(NodeKind::kMaximum, flat->xnode_union_as_XNNMaximum()); break;
      case U::XNNPReLU: status = binary(NodeKind::kPRelu, flat->xnode_union_as_XNNPReLU()); break;
      case U::XNNBatchMatrixMultiply:
        status = binary(NodeKind::kBatchMatrixMultiply, flat->xnode_union_as_XNNBatchMatrixMultiply());
        break;
      case U::XNNFullyConnected: {
        const auto* args = flat->xnode_union_as_XNNFullyConnected();
        node.kind = NodeKind::kFullyConnected;
        node.flags = args->flags();
        status = add_input(args->input1_id(), false, "input");
        if (status.ok()) status = add_input(args->filter_id(), false, "filter");
        if (status.ok()) status = add_input(args->bias_id(), true, "bias");
        if (status.ok()) status = add_output(args->output_id());
        break;
      }
      case U::XNNConv2d: status = conv(NodeKind::kConv2d, flat->xnode_union_as_XNNConv2d()); break;
      case U::XNNDepthwiseConv2d: status = conv(NodeKind::kDepthwiseConv2d, flat->xnode_union_as_XNNDepthwiseConv2d()); break;
      case U::XNNConvTranspose2d: status = conv(NodeKind::kConvTranspose2d, flat->xnode_union_as_XNNConvTranspose2d()); break;
      case U::XNNSoftmax: status = unary(NodeKind::kSoftmax, flat->xnode_union_as_XNNSoftmax()); break;
      case U::XNNSigmoid: status = unary(NodeKind::kSigmoid, flat->xnode_union_as_XNNSigmoid()); break;
      case U::XNNTanh: status = unary(NodeKind::kTanh, flat->xnode_union_as_XNNTanh()); break;
      case U::XNNGelu: status = unary(NodeKind::kGelu, flat->xnode_union_as_XNNGelu()); break;
      case U::XNNHardswish: status = unary(NodeKind::kHardswish, flat->xnode_union_as_XNNHardswish()); break;
      case U::XNNClamp: status = unary(NodeKind::kClamp, flat->xnode_union_as_XNNClamp()); break;
      case U::XNNAbs: status = unary(NodeKind::kAbs, flat->xnode_union_as_XNNAbs()); break;
      case U::XNNNegate: status = unary(NodeKind::kNegate, flat->xnode_union_as_XNNNegate()); break;
      case U::XNNFloor: status = unary(NodeKind::kFloor, flat->xnode_union_as_XNNFloor()); break;
      case U::XNNCeiling: status = unary(NodeKind::kCeiling, flat->xnode_union_as_XNNCeiling()); break;
      case U::XNNSquare: status = unary(NodeKind::kSquare, flat->xnode_union_as_XNNSquare()); break;
      case U::XNNSquareRoot: status = unary(NodeKind::kSquareRoot, flat->xnode_union_as_XNNSquareRoot()); break;
      case U::XNNReciprocalSquareRoot:
        status = unary(NodeKind::kReciprocalSquareRoot, flat->xnode_union_as_XNNReciprocalSquareRoot());
        break;
      case U::XNNExp: status = unary(NodeKind::kExp, flat->xnode_union_as_XNNExp()); break;
      case U::XNNLog: status = unary(NodeKind::kLog, flat->xnode_union_as_XNNLog()); break;
      case U::XNNSin: status = unary(NodeKind::kSin, flat->xnode_union_as_XNNSin()); break;
      case U::XNNCos: status = unary(NodeKind::kCos, flat->xnode_union_as_XNNCos()); break;
      case U::XNNCopy: status = unary(NodeKind::kCopy, flat->xnode_union_as_XNNCopy()); break;
      case U::XNNConvert: status = unary(NodeKind::kConvert, flat->xnode_union_as_XNNConvert()); break;
      case U::XNNGlobalAvgPooling2d:
        status = unary(NodeKind::kGlobalAvgPooling2d, flat->xnode_union_as_XNNGlobalAvgPooling2d());
        break;
      case U::XNNLeakyReLU: {
        const auto* args = flat->xnode_union_as_XNNLeakyReLU();
        node.kind = NodeKind::kLeakyRelu;
        node.scalar = args->negative_slope();
        status = connect(args->input_id(), args->output_id());
        break;
      }
      case U::XNNELU: {
        const auto* args = flat->xnode_union_as_XNNELU();
        node.kind = NodeKind::kElu;
        node.scalar = args->alpha();
        status = connect(args->input_id(), args->output_id());
        break;
      }
      case U::XNNStaticTranspose: {
        const auto* args = flat->xnode_union_as_XNNStaticTranspose();
        node.kind = NodeKind::kStaticTranspose;
        node.list_a = list(args->perm());
        status = connect(args->input_id(), args->output_id());
        break;
      }
      case U::XNNStaticReshape: {
        const auto* args = flat->xnode_union_as_XNNStaticReshape();
        node.kind = NodeKind::kStaticReshape;
        node.list_a = list(args->new_shape());
        status = connect(args->input_id(), args->output_id());
        break;
      }
      case U::XNNStaticSlice: {
        const auto* args = flat->xnode_union_as_XNNStaticSlice();
        node.kind = NodeKind::kStaticSlice;
        node.list_a = list(args->offsets());
        node.list_b = list(args->sizes());
        status = connect(args->input_id(), args->output_id());
        break;
      }
      case U::XNNStaticConstantPad: {
        const auto* args = flat->xnode_union_as_XNNStaticConstantPad();
        node.kind = NodeKind::kStaticConstantPad;
        node.list_a = list(args->pre_paddings());
        node.list_b = list(args->post_paddings());
        node.scalar = args->padding_value();
        status = connect(args->input_id(), args->output_id());
        break;
      }
      case U::XNNStaticResizeBilinear2D: {
        const auto* args = flat->xnode_union_as_XNNStaticResizeBilinear2D();
        node.kind = NodeKind::kStaticResizeBilinear2d;
        node.flags = args->flags();
        node.new_h = args->new_height();
        node.new_w = args->new_width();
        status = connect(args->input_id(), args->output_id());
        break;
      }
      case U::XNNConcatenate2: status = concatenate(flat->xnode_union_as_XNNConcatenate2(), 2); break;
      case U::XNNConcatenate3: status = concatenate(flat->xnode_union_as_XNNConcatenate3(), 3); break;
      case U::XNNConcatenate4: status = concatenate(flat->xnode_union_as_XNNConcatenate4(), 4); break;
      case U::XNNConcatenate5: status = concatenate(flat->xnode_union_as_XNNConcatenate5(), 5); break;
      case U::XNNAvgPooling2d: status = pooling(NodeKind::kAvgPooling2d, flat->xnode_union_as_XNNAvgPooling2d()); break;
      case U::XNNMaxPooling2d: status = pooling(NodeKind::kMaxPooling2d, flat->xnode_union_as_XNNMaxPooling2d()); break;
      case U::XNNArgMaxPooling2d: {
        const auto* args = flat->xnode_union_as_XNNArgMaxPooling2d();
        node.kind = NodeKind::kArgMaxPooling2d;
        node.flags = args->flags();
        node.pad_top = args->padding_top();
        node.pad_right = args->padding_right();
        node.pad_bottom = args->padding_bottom();
        node.pad_left = args->padding_left();
        node.kernel_h = args->pooling_height();
        node.kernel_w = args->pooling_width();
        node.stride_h = node.kernel_h;
        node.stride_w = node.kernel_w;
        status = connect(args->input_id(), args->output_value_id());
        if (status.ok()) status = add_output(args->output_index_id());
        break;
      }
      case U::XNNScaledDotProductAttention: {
        const auto* args = flat->xnode_union_as_XNNScaledDotProductAttention();
        node.kind = NodeKind::kScaledDotProductAttention;
        node.flags = args->flags();
        status = add_input(args->query_id(), false, "query");
        if (status.ok()) status = add_input(args->key_id(), false, "key");
        if (status.ok()) status = add_input(args->value_id(), false, "value");
        if (status.ok()) status = add_input(args->scale_id(), false, "scale");
        if (status.ok()) status = add_input(args->mask_id(), false, "mask");
        if (status.ok()) status = add_output(args->output_id());
        break;
      }
      default:
        return malformed("XNNPACK node " + std::to_string(n) + " has unknown type " +
                         std::to_string(static_cast<int>(flat->xnode_union_type())));
    }
    if (!status.ok()) return status;

    // Lifetimes for the per-call memory plan.
    for (uint32_t input : node.inputs) {
      if (input != kInvalidId) self.values_[input].last_use = static_cast<int32_t>(n);
    }
    for (uint32_t output : node.outputs) {
      Value& value = self.values_[output];
      if (value.first_use >= 0) {
        return malformed("XNNPACK value written by nodes " + std::to_string(value.first_use) + " and " +
                         std::to_string(n) + "; each value must have one producer");
      }
      value.first_use = static_cast<int32_t>(n);
      if (value.last_use < static_cast<int32_t>(n)) value.last_use = static_cast<int32_t>(n);
    }
    self.nodes_.push_back(std::move(node));
  }

  // Every value a node reads must exist before it: an input, a constant or an earlier output.
  for (uint32_t n = 0; n < self.nodes_.size(); ++n) {
    for (uint32_t input : self.nodes_[n].inputs) {
      if (input == kInvalidId) continue;
      const Value& value = self.values_[input];
      if (value.constant == nullptr && !value.external_input && !(value.first_use >= 0 && value.first_use < static_cast<int32_t>(n))) {
        return malformed("XNNPACK node " + std::to_string(n) + " (" + node_kind_name(self.nodes_[n].kind) +
                         ") reads a value that no earlier node produces");
      }
    }
  }
  for (uint32_t index : self.outputs_) {
    if (index != kInvalidId && self.values_[index].first_use < 0) {
      return malformed("XNNPACK external output value " + std::to_string(index) + " is produced by no node");
    }
  }

  use_single_threaded_blas();
  self.max_workspace_bytes_ = context.max_workspace_bytes;
  self.fuse_nodes();
  self.limit_rows(context.arg_row_limits);
  self.elide_layout_nodes();
  self.fold_residual_adds();
  self.fuse_attention();
  self.pack_constant_weights(context);
  self.plan_at_load();
  return result;
}

void Graph::fuse_nodes() {
  // Readers of each value, in node order. readers_of() fails for external outputs, which the
  // caller reads too.
  std::vector<std::vector<uint32_t>> readers = value_readers(nodes_, values_.size());
  auto readers_of = [&](uint32_t value, std::vector<uint32_t>& found) {
    if (values_[value].external_output) return false;
    found = readers[value];
    return true;
  };
  // The other input of a two-input node, or kInvalidId when `value` is not one of them.
  auto other_input = [](const Node& node, uint32_t value) {
    if (node.inputs.size() != 2) return kInvalidId;
    if (node.inputs[0] == value) return node.inputs[1];
    return node.inputs[1] == value ? node.inputs[0] : kInvalidId;
  };

  std::vector<bool> removed(nodes_.size(), false);
  bool changed = false;
  for (uint32_t n = 0; n < nodes_.size(); ++n) {
    Node& linear = nodes_[n];
    if (linear.kind != NodeKind::kFullyConnected || !unclamped(linear) || linear.outputs.size() != 1) continue;
    uint32_t x = linear.outputs[0];
    std::vector<uint32_t> x_readers, t_readers, s_readers;
    if (!readers_of(x, x_readers) || x_readers.size() != 2) continue;
    // x * c, with c a constant of one element and a rank that does not raise x's.
    const Node& scale = nodes_[x_readers[0]];
    uint32_t c = other_input(scale, x);
    if (scale.kind != NodeKind::kMultiply || !unclamped(scale) || c == kInvalidId || c == x) continue;
    const Value& constant = values_[c];
    if (constant.constant == nullptr || checked_numel(constant.dims) != 1 || constant.dims.size() > values_[x].dims.size()) continue;
    uint32_t t = scale.outputs[0];
    if (!readers_of(t, t_readers) || t_readers.size() != 1) continue;
    const Node& sigmoid = nodes_[t_readers[0]];
    if (sigmoid.kind != NodeKind::kSigmoid || !unclamped(sigmoid)) continue;
    uint32_t s = sigmoid.outputs[0];
    if (!readers_of(s, s_readers) || s_readers.size() != 1 || s_readers[0] != x_readers[1]) continue;
    const Node& product = nodes_[x_readers[1]];
    if (product.kind != NodeKind::kMultiply || other_input(product, x) != s) continue;
    uint32_t y = product.outputs[0];
    if (values_[y].dims != values_[x].dims) continue;

    linear.activation = {Activation::Kind::kQuickGelu, constant.constant[0]};
    linear.outputs[0] = y;
    linear.output_min = product.output_min;
    linear.output_max = product.output_max;
    removed[x_readers[0]] = removed[t_readers[0]] = removed[x_readers[1]] = true;
    changed = true;
  }
  if (!changed) return;
  std::vector<Node> remaining;
  for (uint32_t n = 0; n < nodes_.size(); ++n) {
    if (!removed[n]) remaining.push_back(std::move(nodes_[n]));
  }
  nodes_ = std::move(remaining);
  compute_lifetimes();
}

void Graph::limit_rows(std::span<const int64_t> arg_row_limits) {
  // Rows of each value that later nodes or the program read: 0 none found yet, -1 all.
  constexpr int64_t kAll = -1;
  std::vector<int64_t> live(values_.size(), 0);
  bool any = false;
  for (uint32_t id = 0; id < extern_count_; ++id) {
    uint32_t value = outputs_[id];
    if (value == kInvalidId) continue;
    int64_t limit = id < arg_row_limits.size() ? arg_row_limits[id] : 0;
    const Dims& dims = values_[value].dims;
    int64_t rows = dims.empty() || dims.back() == 0 ? 0 : checked_numel(dims) / dims.back();
    if (limit > 0 && limit < rows) {
      live[value] = limit;
      any = true;
    } else {
      live[value] = kAll;
    }
  }
  if (!any) return;
  auto demand = [&](uint32_t value, int64_t rows) {
    if (value == kInvalidId) return;
    int64_t& current = live[value];
    current = (current == kAll || rows == kAll) ? kAll : std::max(current, rows);
  };
  auto elementwise = [](NodeKind kind) {
    switch (kind) {
      case NodeKind::kAdd: case NodeKind::kSubtract: case NodeKind::kMultiply: case NodeKind::kDivide:
      case NodeKind::kMinimum: case NodeKind::kMaximum: case NodeKind::kSigmoid: case NodeKind::kTanh:
      case NodeKind::kGelu: case NodeKind::kHardswish: case NodeKind::kLeakyRelu: case NodeKind::kElu:
      case NodeKind::kClamp: case NodeKind::kAbs: case NodeKind::kNegate: case NodeKind::kFloor:
      case NodeKind::kCeiling: case NodeKind::kSquare: case NodeKind::kSquareRoot:
      case NodeKind::kReciprocalSquareRoot: case NodeKind::kExp: case NodeKind::kLog: case NodeKind::kSin:
      case NodeKind::kCos: case NodeKind::kCopy: case NodeKind::kConvert:
        return true;
      default:
        return false;
    }
  };
  // Nodes come in dependency order, so walking back meets every reader of a value before
  // the node that writes it.
  for (size_t n = nodes_.size(); n-- > 0;) {
    Node& node = nodes_[n];
    int64_t rows = node.outputs.size() == 1 ? live[node.outputs[0]] : kAll;
    const Dims& out_dims = node.outputs.size() == 1 ? values_[node.outputs[0]].dims : Dims{};
    bool row_wise = rows > 0 && !out_dims.empty();
    if (row_wise && node.kind == NodeKind::kFullyConnected) {
      // Input rows match output rows; the filter and bias are read whole.
      demand(node.inputs[0], rows);
      for (size_t i = 1; i < node.inputs.size(); ++i) demand(node.inputs[i], kAll);
    } else if (row_wise && elementwise(node.kind)) {
      // Each operand either has the output's shape (read row by row) or is one element.
      for (uint32_t input : node.inputs) {
        if (input == kInvalidId) continue;
        const Dims& dims = values_[input].dims;
        if (dims != out_dims && checked_numel(dims) != 1) row_wise = false;
      }
      for (uint32_t input : node.inputs) {
        if (input != kInvalidId) demand(input, row_wise && values_[input].dims == out_dims ? rows : kAll);
      }
    } else {
      row_wise = false;
      for (uint32_t input : node.inputs) demand(input, kAll);
    }
    if (row_wise) node.live_rows = rows;
  }
}

void Graph::compute_lifetimes() {
  for (Value& value : values_) value.first_use = value.last_use = -1;
  for (uint32_t n = 0; n < nodes_.size(); ++n) {
    for (uint32_t input : nodes_[n].inputs) {
      if (input != kInvalidId) values_[input].last_use = static_cast<int32_t>(n);
    }
    for (uint32_t output : nodes_[n].outputs) {
      values_[output].first_use = static_cast<int32_t>(n);
      values_[output].last_use = std::max(values_[output].last_use, static_cast<int32_t>(n));
    }
  }
}

void Graph::elide_layout_nodes() {
  std::vector<std::vector<uint32_t>> readers = value_readers(nodes_, values_.size());
  // True for an intermediate that exactly one node reads and the caller does not.
  auto handed_on = [&](uint32_t value) {
    const Value& v = values_[value];
    return !v.external_output && !v.external_input && v.constant == nullptr && v.first_use >= 0 &&
           readers[value].size() == 1;
  };
  auto layout_node = [&](const Node& node) {
    return (node.kind == NodeKind::kStaticTranspose || node.kind == NodeKind::kStaticReshape) && node.elided_by < 0 &&
           node.live_rows == 0 && node.inputs.size() == 1 && node.outputs.size() == 1 && unclamped(node);
  };
  for (uint32_t b = 0; b < nodes_.size(); ++b) {
    Node& product = nodes_[b];
    if (product.kind != NodeKind::kBatchMatrixMultiply || product.inputs.size() != 2 || product.outputs.size() != 1) continue;
    for (size_t i = 0; i < 2; ++i) {
      LayoutChain chain;
      uint32_t value = product.inputs[i];
      while (handed_on(value) && layout_node(nodes_[static_cast<size_t>(values_[value].first_use)])) {
        chain.nodes.insert(chain.nodes.begin(), static_cast<uint32_t>(values_[value].first_use));
        value = nodes_[chain.nodes.front()].inputs[0];
      }
      if (chain.nodes.empty() || value == kInvalidId) continue;
      chain.value = value;
      // The far end is read when the product runs, later than the chain's first node.
      values_[value].last_use = std::max(values_[value].last_use, static_cast<int32_t>(b));
      for (uint32_t n : chain.nodes) nodes_[n].elided_by = static_cast<int32_t>(b);
      product.chains[i] = std::move(chain);
    }
    // The output chain's far end receives the product's values unclamped.
    if (!unclamped(product)) continue;
    LayoutChain chain;
    uint32_t value = product.outputs[0];
    while (handed_on(value) && layout_node(nodes_[readers[value][0]])) {
      chain.nodes.push_back(readers[value][0]);
      value = nodes_[readers[value][0]].outputs[0];
    }
    if (chain.nodes.empty()) continue;
    chain.value = value;
    // The far end is written when the product runs, so memory planning allocates it there.
    values_[value].allocated_at = static_cast<int32_t>(b);
    product.early_outputs.push_back(value);
    for (uint32_t n : chain.nodes) nodes_[n].elided_by = static_cast<int32_t>(b);
    product.chains[2] = std::move(chain);
  }
}

void Graph::fold_residual_adds() {
  std::vector<std::vector<uint32_t>> readers = value_readers(nodes_, values_.size());
  for (uint32_t f = 0; f < nodes_.size(); ++f) {
    Node& linear = nodes_[f];
    if (linear.kind != NodeKind::kFullyConnected || !unclamped(linear) || linear.outputs.size() != 1) continue;
    uint32_t x = linear.outputs[0];
    if (values_[x].external_output || readers[x].size() != 1) continue;
    Node& add = nodes_[readers[x][0]];
    if (add.kind != NodeKind::kAdd || !unclamped(add) || add.inputs.size() != 2 || add.elided_by >= 0 ||
        add.live_rows != linear.live_rows) {
      continue;
    }
    uint32_t residual = add.inputs[0] == x ? add.inputs[1] : add.inputs[0];
    uint32_t sum = add.outputs[0];
    // The residual must exist when the FullyConnected runs, and no broadcast may be involved.
    if (residual == x || values_[residual].first_use >= static_cast<int32_t>(f) ||
        values_[residual].dims != values_[x].dims || values_[sum].dims != values_[x].dims ||
        values_[sum].allocated_at >= 0) {
      continue;
    }
    linear.residual = residual;
    linear.residual_output = sum;
    // The sum is written when the FullyConnected runs, so memory planning allocates it there.
    linear.early_outputs.push_back(sum);
    values_[sum].allocated_at = static_cast<int32_t>(f);
    add.elided_by = static_cast<int32_t>(f);
  }
}

void Graph::fuse_attention() {
  if (!attention_kernel_available()) return;
  std::vector<std::vector<uint32_t>> readers = value_readers(nodes_, values_.size());
  // The one node that reads an intermediate value, or kInvalidId.
  auto only_reader = [&](uint32_t value) {
    const Value& v = values_[value];
    if (v.external_output || v.external_input || v.constant != nullptr || readers[value].size() != 1) return kInvalidId;
    return readers[value][0];
  };
  auto free_node = [](const Node& node) {
    return unclamped(node) && node.elided_by < 0 && node.live_rows == 0 && node.outputs.size() == 1;
  };
  auto far_end = [](const Node& product, size_t i, uint32_t value) {
    return product.chains[i].value != kInvalidId ? product.chains[i].value : value;
  };
  for (uint32_t f = 0; f < nodes_.size(); ++f) {
    Node& first = nodes_[f];
    if (first.kind != NodeKind::kBatchMatrixMultiply || !free_node(first) || first.inputs.size() != 2 ||
        first.inputs[0] == kInvalidId || first.inputs[1] == kInvalidId) {
      continue;
    }
    uint32_t scores = far_end(first, 2, first.outputs[0]);
    uint32_t m = only_reader(scores);
    if (m == kInvalidId || nodes_[m].kind != NodeKind::kMultiply || !free_node(nodes_[m]) || nodes_[m].inputs.size() != 2 ||
        nodes_[m].inputs[0] == kInvalidId || nodes_[m].inputs[1] == kInvalidId) {
      continue;
    }
    Node& multiply = nodes_[m];
    uint32_t constant = multiply.inputs[0] == scores ? multiply.inputs[1] : multiply.inputs[0];
    if (constant == scores || values_[constant].constant == nullptr || checked_numel(values_[constant].dims) != 1 ||
        values_[constant].dims.size() > values_[scores].dims.size()) {
      continue;
    }
    uint32_t s = only_reader(multiply.outputs[0]);
    if (s == kInvalidId || nodes_[s].kind != NodeKind::kSoftmax || !free_node(nodes_[s])) continue;
    uint32_t probabilities = nodes_[s].outputs[0];
    if (only_reader(probabilities) == kInvalidId) continue;
    // The second product reads the probabilities as its first operand, directly or through its
    // chain.
    uint32_t b = kInvalidId;
    for (uint32_t n = s + 1; n < nodes_.size() && b == kInvalidId; ++n) {
      const Node& node = nodes_[n];
      if (node.kind == NodeKind::kBatchMatrixMultiply && node.inputs.size() == 2 && node.inputs[1] != kInvalidId &&
          far_end(node, 0, node.inputs[0]) == probabilities && node.inputs[1] != probabilities) {
        b = n;
      }
    }
    if (b == kInvalidId || !free_node(nodes_[b]) || (nodes_[b].flags & kFlagTransposeWeights) != 0) continue;
    Node& second = nodes_[b];
    // The first product runs the block, so the values must exist by then.
    uint32_t values = far_end(second, 1, second.inputs[1]);
    if (values_[values].first_use >= static_cast<int32_t>(f)) continue;

    // The second product's result (or its output chain's far end) is written by the first.
    uint32_t result = far_end(second, 2, second.outputs[0]);
    if (!values_[result].external_output) {
      auto& early = second.early_outputs;
      early.erase(std::remove(early.begin(), early.end(), result), early.end());
      values_[result].allocated_at = static_cast<int32_t>(f);
      first.early_outputs.push_back(result);
    }
    values_[values].last_use = std::max(values_[values].last_use, static_cast<int32_t>(b));
    for (uint32_t n : {m, s, b}) {
      nodes_[n].elided_by = static_cast<int32_t>(f);
      nodes_[n].elided_level = 2;
    }
    first.attention_multiply = static_cast<int32_t>(m);
    first.attention_scale = constant;
    first.attention_softmax = static_cast<int32_t>(s);
    first.attention_product = static_cast<int32_t>(b);
  }
}

void Graph::pack_constant_weights(const BackendInitContext& context) {
  if (packed_panel_width() == 0) return;
  for (Node& node : nodes_) {
    bool linear = node.kind == NodeKind::kFullyConnected;
    bool convolution = node.kind == NodeKind::kConv2d && node.groups == 1;
    if (!linear && !convolution) continue;
    const Value& filter = values_[node.inputs[1]];
    const Value* bias = node.inputs[2] == kInvalidId ? nullptr : &values_[node.inputs[2]];
    if (filter.constant == nullptr || (bias != nullptr && bias->constant == nullptr)) continue;

    // FullyConnected: [out, in], or [in, out] with the transpose flag. Conv2d: [out, kh, kw, in]
    // is [out, kh * kw * in], the row layout of the im2col columns.
    bool k_by_n = linear && (node.flags & kFlagTransposeWeights) != 0;
    int64_t n = filter.dims.empty() ? 0 : (k_by_n ? filter.dims.back() : filter.dims.front());
    int64_t k = n == 0 ? 0 : checked_numel(filter.dims) / n;
    if (filter.dims.size() < 2 || (bias != nullptr && checked_numel(bias->dims) != n)) continue;

    PackedWeights weights;
    if (!pack_weights(context.pool, filter.constant, n, k, k_by_n, bias ? bias->constant : nullptr, weights)) continue;
    node.packed = static_cast<int32_t>(packed_.size());
    packed_.push_back(std::move(weights));
    if (context.release_constant) {
      context.release_constant(filter.constant, static_cast<size_t>(n * k) * sizeof(float));
    }
  }
}

}  // namespace ei::xnn
