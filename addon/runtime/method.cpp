// Method preparation (checking every index of an execution plan once, at load) and
// execution (the instruction loop over a method instance).
#include <algorithm>
#include <cstring>
#include <new>

#include "program_generated.h"
#include "runtime/program.h"
#include "runtime/tensor_copy.h"

namespace ei {

namespace {

// Calls per thread from which a batch runs in shares, one share per thread (see
// Program::execute_batch); smaller batches split each node's work between the threads.
constexpr size_t kCallsPerThreadShare = 3;

using flatbuffers::uoffset_t;

// Kernels read bool elements as C++ bool, for which only the bytes 0 and 1 are valid. Bytes
// entering from a file or a caller are normalized to 0/1 on the way in. NOTE: a program that
// plans a bool tensor over another dtype's memory can still hand kernels other bytes. The
// results are then unspecified but stay within the tensors' memory.
void normalize_bools(void* data, size_t count) {
  auto* bytes = static_cast<uint8_t*>(data);
  for (size_t i = 0; i < count; ++i) {
    if (bytes[i] > 1) bytes[i] = 1;
  }
}


constexpr std::string_view kXnnpackBackendId = "XnnpackBackend";

ValueMeta meta_of(const ValueTemplate& value, const std::vector<TensorTemplate>& tensors) {
  ValueMeta meta;
  meta.tag = value.value.tag;
  if (value.tensor_index >= 0) {
    const Tensor& tensor = tensors[static_cast<size_t>(value.tensor_index)].tensor;
    meta.dtype = tensor.dtype;
    meta.sizes = tensor.sizes;
    meta.dim_order = tensor.dim_order;
    meta.dynamism = tensor.dynamism;
  }
  return meta;
}

std::string operator_problem(const std::string& full_name) {
  std::string name_space = full_name.substr(0, full_name.find("::"));
  if (full_name.find("::") == std::string::npos) {
    return "operator '" + full_name + "' has no namespace and is not an ATen operator that embed-image implements";
  }
  if (name_space != "aten" && name_space != "dim_order_ops") {
    return "operator " + full_name + " belongs to the custom namespace '" + name_space +
           "', which embed-image does not implement; only ATen core operators and the XnnpackBackend delegate "
           "run here, so export the model for XNNPACK without vendor-specific operators";
  }
  return "operator " + full_name + " is not implemented by embed-image's portable kernels";
}

std::string backend_problem(std::string_view id) {
  if (id == kXnnpackBackendId) {
    return "backend XnnpackBackend is not implemented yet in this version of embed-image; only programs that use "
           "portable operators run for now";
  }
  return "backend '" + std::string(id) +
         "' is not supported: embed-image runs the XnnpackBackend delegate and portable operators only; use the "
         "model's XNNPACK variant (for react-native-executorch models, the .pte file whose name contains 'xnnpack')";
}

// Sets value `index` of an instance to the plan's template: its tag and scalars, its tensor
// and its list items in this instance.
void reset_value(const MethodPlan& plan, MethodInstance& instance, size_t index) {
  const ValueTemplate& slot = plan.values[index];
  EValue& value = instance.values[index];
  value = slot.value;
  if (slot.tensor_index >= 0) value.tensor = &instance.tensors[static_cast<size_t>(slot.tensor_index)];
  value.items.clear();
  for (int32_t item : slot.item_indices) {
    value.items.push_back(item < 0 ? nullptr : &instance.values[static_cast<size_t>(item)]);
  }
}

// A MoveCall overwrites its destination with another value, possibly of another type, and a
// pooled instance is reused by the next call. Restoring every destination before a call
// keeps each slot's type as the plan declares it, which bind_input relies on.
void reset_move_destinations(const MethodPlan& plan, MethodInstance& instance) {
  const auto* chains = plan.plan->chains();
  if (chains == nullptr) return;
  for (const auto* chain : *chains) {
    if (chain->instructions() == nullptr) continue;
    for (const auto* instruction : *chain->instructions()) {
      if (const auto* move = instruction->instr_args_as_MoveCall()) {
        reset_value(plan, instance, static_cast<size_t>(move->move_to()));
      }
    }
  }
}

}  // namespace

Status Program::prepare_method(MethodPlan& plan, const ei_pte::ExecutionPlan* flat_plan) {
  plan.plan = flat_plan;

  // Arenas. Entry 0 of non_const_buffer_sizes is reserved; memory_id N uses entry N.
  plan.arena_sizes.push_back(0);
  uint64_t planned_total = 0;
  if (const auto* sizes = flat_plan->non_const_buffer_sizes()) {
    for (uoffset_t i = 1; i < sizes->size(); ++i) {
      int64_t size = sizes->Get(i);
      if (size < 0) return error(ErrorCode::kMalformed, "non_const_buffer_sizes[", i, "] is negative (", size, ")");
      if (static_cast<uint64_t>(size) > options_.max_planned_bytes - planned_total) {
        return error(ErrorCode::kOutOfMemory, "the memory plan needs more than ", options_.max_planned_bytes,
                     " bytes (arena ", i, " alone declares ", size, "); the file is corrupt or the model is too large");
      }
      planned_total += static_cast<uint64_t>(size);
      plan.arena_sizes.push_back(size);
    }
  }

  EI_RETURN_IF_ERROR(check_values(plan));
  EI_RETURN_IF_ERROR(check_instructions(plan));

  // Operators: resolved once; a missing kernel is a problem of the method, not of the file.
  if (const auto* operators = flat_plan->operators()) {
    for (uoffset_t i = 0; i < operators->size(); ++i) {
      const auto* op = operators->Get(i);
      std::string_view name = op->name() == nullptr ? std::string_view() : op->name()->string_view();
      std::string_view overload = op->overload() == nullptr ? std::string_view() : op->overload()->string_view();
      std::string full_name = operator_full_name(name, overload);
      const KernelInfo* kernel = find_kernel(name, overload);
      plan.operator_names.push_back(full_name);
      plan.kernels.push_back(kernel);
      if (kernel == nullptr) plan.problems.push_back({ErrorCode::kUnsupportedOperator, operator_problem(full_name)});
    }
  }

  EI_RETURN_IF_ERROR(prepare_delegates(plan));

  // Inputs and outputs.
  const auto* inputs = flat_plan->inputs();
  const auto* outputs = flat_plan->outputs();
  if (inputs != nullptr) {
    for (uoffset_t i = 0; i < inputs->size(); ++i) {
      int32_t index = inputs->Get(i);
      if (index < 0 || static_cast<size_t>(index) >= plan.values.size()) {
        return error(ErrorCode::kMalformed, "input ", i, " refers to value ", index, " of ", plan.values.size());
      }
      plan.inputs.push_back(meta_of(plan.values[static_cast<size_t>(index)], plan.tensors));
    }
  }
  if (outputs != nullptr) {
    for (uoffset_t i = 0; i < outputs->size(); ++i) {
      int32_t index = outputs->Get(i);
      if (index < 0 || static_cast<size_t>(index) >= plan.values.size()) {
        return error(ErrorCode::kMalformed, "output ", i, " refers to value ", index, " of ", plan.values.size());
      }
      plan.outputs.push_back(meta_of(plan.values[static_cast<size_t>(index)], plan.tensors));
    }
  }
  return Status::Ok();
}

Status Program::check_values(MethodPlan& plan) {
  const auto* values = plan.plan->values();
  size_t count = values == nullptr ? 0 : values->size();
  plan.value_count = count;
  plan.values.resize(count);

  auto check_index = [count](int64_t index, size_t value, const char* what) -> Status {
    if (index < 0 || static_cast<uint64_t>(index) >= count) {
      return error(ErrorCode::kMalformed, "value ", value, ": ", what, " refers to value ", index, ", out of range (",
                   count, " values)");
    }
    return Status::Ok();
  };

  for (size_t i = 0; i < count; ++i) {
    const auto* flat = values->Get(static_cast<uoffset_t>(i));
    ValueTemplate& slot = plan.values[i];
    // The flatbuffers Verifier accepts a union whose type is set but whose table is absent,
    // so every val_as_*() below could return null without this check.
    if (flat->val() == nullptr && flat->val_type() != ei_pte::KernelTypes::NONE &&
        flat->val_type() != ei_pte::KernelTypes::Null) {
      return error(ErrorCode::kMalformed, "value ", i, " has type ", static_cast<int>(flat->val_type()), " (",
                   ei_pte::EnumNameKernelTypes(flat->val_type()), ") but no val table");
    }
    switch (flat->val_type()) {
      case ei_pte::KernelTypes::NONE:
      case ei_pte::KernelTypes::Null:
        slot.value.tag = Tag::kNone;
        break;
      case ei_pte::KernelTypes::Int:
        slot.value.tag = Tag::kInt;
        slot.value.int_value = flat->val_as_Int()->int_val();
        break;
      case ei_pte::KernelTypes::Bool:
        slot.value.tag = Tag::kBool;
        slot.value.bool_value = flat->val_as_Bool()->bool_val();
        break;
      case ei_pte::KernelTypes::Double:
        slot.value.tag = Tag::kDouble;
        slot.value.double_value = flat->val_as_Double()->double_val();
        break;
      case ei_pte::KernelTypes::String: {
        slot.value.tag = Tag::kString;
        const auto* text = flat->val_as_String()->string_val();
        if (text != nullptr) slot.value.string_value = text->string_view();
        break;
      }
      case ei_pte::KernelTypes::IntList:
      case ei_pte::KernelTypes::TensorList:
      case ei_pte::KernelTypes::OptionalTensorList: {
        bool optional = flat->val_type() == ei_pte::KernelTypes::OptionalTensorList;
        bool ints = flat->val_type() == ei_pte::KernelTypes::IntList;
        if (ints) {
          slot.value.tag = Tag::kIntList;
        } else {
          slot.value.tag = optional ? Tag::kOptionalTensorList : Tag::kTensorList;
        }
        if (ints) {
          if (const auto* items = flat->val_as_IntList()->items()) {
            for (int64_t item : *items) {
              EI_RETURN_IF_ERROR(check_index(item, i, "an IntList item"));
              slot.item_indices.push_back(static_cast<int32_t>(item));
            }
          }
        } else {
          const auto* items = optional ? flat->val_as_OptionalTensorList()->items() : flat->val_as_TensorList()->items();
          if (items != nullptr) {
            for (int32_t item : *items) {
              if (optional && item == -1) {
                slot.item_indices.push_back(-1);
                continue;
              }
              EI_RETURN_IF_ERROR(check_index(item, i, "a tensor list item"));
              slot.item_indices.push_back(item);
            }
          }
        }
        break;
      }
      case ei_pte::KernelTypes::DoubleList:
        slot.value.tag = Tag::kDoubleList;
        if (const auto* items = flat->val_as_DoubleList()->items()) {
          slot.value.double_items.assign(items->begin(), items->end());
        }
        break;
      case ei_pte::KernelTypes::BoolList:
        slot.value.tag = Tag::kBoolList;
        if (const auto* items = flat->val_as_BoolList()->items()) {
          for (uint8_t item : *items) slot.value.bool_items.push_back(item != 0);
        }
        break;
      case ei_pte::KernelTypes::Tensor: {
        slot.value.tag = Tag::kTensor;
        slot.tensor_index = static_cast<int32_t>(plan.tensors.size());
        plan.tensors.emplace_back();
        break;
      }
      default:
        return error(ErrorCode::kMalformed, "value ", i, " has unknown type ", static_cast<int>(flat->val_type()));
    }
  }

  // List items must name values of the right kind; checked after every tag is known.
  for (size_t i = 0; i < count; ++i) {
    const ValueTemplate& slot = plan.values[i];
    for (int32_t item : slot.item_indices) {
      if (item < 0) continue;
      Tag item_tag = plan.values[static_cast<size_t>(item)].value.tag;
      bool valid = slot.value.tag == Tag::kIntList ? item_tag == Tag::kInt
                   : slot.value.tag == Tag::kOptionalTensorList ? (item_tag == Tag::kTensor || item_tag == Tag::kNone)
                                                                  : item_tag == Tag::kTensor;
      if (!valid) {
        return error(ErrorCode::kMalformed, "value ", i, " (", tag_name(slot.value.tag), ") lists value ", item,
                     ", which is ", tag_name(item_tag));
      }
    }
  }

  // Tensors.
  for (size_t i = 0; i < count; ++i) {
    const ValueTemplate& slot = plan.values[i];
    if (slot.tensor_index < 0) continue;
    const auto* flat = values->Get(static_cast<uoffset_t>(i))->val_as_Tensor();
    TensorTemplate& entry = plan.tensors[static_cast<size_t>(slot.tensor_index)];
    Tensor& tensor = entry.tensor;

    tensor.dtype = static_cast<ScalarType>(flat->scalar_type());
    if (element_size(tensor.dtype) == 0) {
      return error(ErrorCode::kMalformed, "tensor value ", i, " has unknown scalar type ",
                   static_cast<int>(flat->scalar_type()));
    }
    if (!is_supported_dtype(tensor.dtype)) {
      plan.problems.push_back({ErrorCode::kUnsupportedDtype, "tensor value " + std::to_string(i) + " has dtype " +
                                                                 dtype_name(tensor.dtype) +
                                                                 ", which embed-image does not compute with yet"});
    }
    if (flat->storage_offset() != 0) {
      return error(ErrorCode::kMalformed, "tensor value ", i, " has storage_offset ", flat->storage_offset(),
                   "; only 0 is valid");
    }
    if (flat->sizes() != nullptr) tensor.sizes.assign(flat->sizes()->begin(), flat->sizes()->end());
    if (tensor.sizes.size() > kMaxRank) {
      return error(ErrorCode::kMalformed, "tensor value ", i, " has rank ", tensor.sizes.size(), ", above the limit ",
                   kMaxRank);
    }
    int64_t numel = checked_numel(tensor.sizes);
    if (numel < 0 || static_cast<uint64_t>(numel) > (uint64_t{1} << 48) / element_size(tensor.dtype)) {
      return error(ErrorCode::kMalformed, "tensor value ", i, " has invalid sizes ", tensor.shape_string());
    }
    if (flat->dim_order() != nullptr && flat->dim_order()->size() > 0) {
      tensor.dim_order.assign(flat->dim_order()->begin(), flat->dim_order()->end());
      std::vector<bool> seen(tensor.sizes.size(), false);
      bool valid = tensor.dim_order.size() == tensor.sizes.size();
      for (uint8_t dim : tensor.dim_order) {
        if (!valid || dim >= seen.size() || seen[dim]) {
          valid = false;
          break;
        }
        seen[dim] = true;
      }
      if (!valid) {
        return error(ErrorCode::kMalformed, "tensor value ", i, " has a dim_order that is not a permutation of its ",
                     tensor.sizes.size(), " dimensions");
      }
    } else {
      for (size_t d = 0; d < tensor.sizes.size(); ++d) tensor.dim_order.push_back(static_cast<uint8_t>(d));
    }
    tensor.update_strides();
    tensor.dynamism = static_cast<ShapeDynamism>(flat->shape_dynamism());
    if (tensor.dynamism != ShapeDynamism::kStatic && tensor.dynamism != ShapeDynamism::kDynamicBound &&
        tensor.dynamism != ShapeDynamism::kDynamicUnbound) {
      return error(ErrorCode::kMalformed, "tensor value ", i, " has unknown shape_dynamism ",
                   static_cast<int>(flat->shape_dynamism()));
    }
    tensor.upper_bound = tensor.sizes;
    size_t nbytes = static_cast<size_t>(numel) * element_size(tensor.dtype);

    const auto* extra = flat->extra_tensor_info();
    if (extra != nullptr && extra->location() == ei_pte::TensorDataLocation::EXTERNAL) {
      std::string fqn = extra->fully_qualified_name() == nullptr ? "" : extra->fully_qualified_name()->str();
      plan.problems.push_back({ErrorCode::kExternalData,
                               "tensor value " + std::to_string(i) + (fqn.empty() ? "" : " ('" + fqn + "')") +
                                   " is stored in an external .ptd data file, which embed-image does not load; "
                                   "export the model with its weights inside the .pte file"});
      continue;
    }

    const auto* allocation = flat->allocation_info();
    if (allocation != nullptr) {
      uint32_t memory_id = allocation->memory_id();
      uint64_t offset = (uint64_t{allocation->memory_offset_high()} << 32) | allocation->memory_offset_low();
      if (memory_id == 0 || memory_id >= plan.arena_sizes.size()) {
        return error(ErrorCode::kMalformed, "tensor value ", i, " is planned in memory_id ", memory_id,
                     ", which the plan does not have (", plan.arena_sizes.size() - 1, " arenas)");
      }
      uint64_t arena = static_cast<uint64_t>(plan.arena_sizes[memory_id]);
      if (offset > arena || nbytes > arena - offset) {
        return error(ErrorCode::kMalformed, "tensor value ", i, " (", nbytes, " bytes at offset ", offset,
                     ") does not fit in arena ", memory_id, " of ", arena, " bytes");
      }
      // Kernels access elements through typed pointers, so data must be aligned to the element
      // size. Arenas start 64-byte aligned, so the offset decides.
      if (nbytes > 0 && offset % element_size(tensor.dtype) != 0) {
        return error(ErrorCode::kMalformed, "tensor value ", i, " (", dtype_name(tensor.dtype), ") is planned at offset ",
                     offset, " of arena ", memory_id, ", which is not a multiple of its ",
                     element_size(tensor.dtype), "-byte element size");
      }
      entry.memory_id = static_cast<int32_t>(memory_id);
      entry.offset = offset;
      tensor.capacity = nbytes;
      if (flat->data_buffer_idx() > 0) {
        auto initial = tensor_data(flat, nbytes, true);
        if (!initial.ok()) return initial.status().with_context("tensor value " + std::to_string(i) + ": ");
        entry.initial = initial.value();
      }
    } else if (flat->data_buffer_idx() > 0) {
      auto bytes = tensor_data(flat, nbytes, false);
      if (!bytes.ok()) return bytes.status().with_context("tensor value " + std::to_string(i) + ": ");
      // Constants are used in place. The file data starts 64-byte aligned in memory, so the
      // address shows whether the constant's offset in the file suits its dtype.
      if (nbytes > 0 && reinterpret_cast<uintptr_t>(bytes.value()) % element_size(tensor.dtype) != 0) {
        return error(ErrorCode::kMalformed, "tensor value ", i, " (", dtype_name(tensor.dtype),
                     ") has constant data at file offset ", bytes.value() - source_->data(),
                     ", which is not a multiple of its ", element_size(tensor.dtype), "-byte element size");
      }
      tensor.data = const_cast<uint8_t*>(bytes.value());
      tensor.capacity = nbytes;
      tensor.is_constant = true;
      // The file is mapped copy-on-write, so fixing a stray byte touches only a private page.
      if (tensor.dtype == ScalarType::kBool) {
        const uint8_t* begin = bytes.value();
        if (std::any_of(begin, begin + nbytes, [](uint8_t b) { return b > 1; })) normalize_bools(tensor.data, nbytes);
      }
    }
  }
  return Status::Ok();
}

Status Program::check_instructions(MethodPlan& plan) {
  const auto* chains = plan.plan->chains();
  if (chains == nullptr) return Status::Ok();
  size_t value_count = plan.values.size();
  size_t operator_count = plan.plan->operators() == nullptr ? 0 : plan.plan->operators()->size();
  size_t delegate_count = plan.plan->delegates() == nullptr ? 0 : plan.plan->delegates()->size();

  for (uoffset_t c = 0; c < chains->size(); ++c) {
    const auto* instructions = chains->Get(c)->instructions();
    if (instructions == nullptr) continue;
    size_t instruction_count = instructions->size();
    plan.instruction_count += instruction_count;

    for (uoffset_t pc = 0; pc < instruction_count; ++pc) {
      auto where = [&]() { return "chain " + std::to_string(c) + " instruction " + std::to_string(pc) + ": "; };
      auto check_value = [&](int64_t index, const char* what) -> Status {
        if (index < 0 || static_cast<uint64_t>(index) >= value_count) {
          return error(ErrorCode::kMalformed, where(), what, " refers to value ", index, ", out of range (",
                       value_count, " values)");
        }
        return Status::Ok();
      };
      const auto* instruction = instructions->Get(pc);
      // As for values, the Verifier lets a union type come without its table.
      if (instruction->instr_args() == nullptr) {
        return error(ErrorCode::kMalformed, where(), "instruction type ", static_cast<int>(instruction->instr_args_type()),
                     " (", ei_pte::EnumNameInstructionArguments(instruction->instr_args_type()),
                     ") has no instr_args table");
      }
      switch (instruction->instr_args_type()) {
        case ei_pte::InstructionArguments::KernelCall: {
          const auto* call = instruction->instr_args_as_KernelCall();
          if (call->op_index() < 0 || static_cast<size_t>(call->op_index()) >= operator_count) {
            return error(ErrorCode::kMalformed, where(), "operator index ", call->op_index(), " is out of range (",
                         operator_count, " operators)");
          }
          if (call->args() != nullptr) {
            for (int32_t arg : *call->args()) EI_RETURN_IF_ERROR(check_value(arg, "a kernel argument"));
          }
          break;
        }
        case ei_pte::InstructionArguments::DelegateCall: {
          const auto* call = instruction->instr_args_as_DelegateCall();
          if (call->delegate_index() < 0 || static_cast<size_t>(call->delegate_index()) >= delegate_count) {
            return error(ErrorCode::kMalformed, where(), "delegate index ", call->delegate_index(),
                         " is out of range (", delegate_count, " delegates)");
          }
          if (call->args() != nullptr) {
            for (int32_t arg : *call->args()) EI_RETURN_IF_ERROR(check_value(arg, "a delegate argument"));
          }
          break;
        }
        case ei_pte::InstructionArguments::MoveCall: {
          const auto* call = instruction->instr_args_as_MoveCall();
          EI_RETURN_IF_ERROR(check_value(call->move_from(), "move_from"));
          EI_RETURN_IF_ERROR(check_value(call->move_to(), "move_to"));
          break;
        }
        case ei_pte::InstructionArguments::JumpFalseCall: {
          const auto* call = instruction->instr_args_as_JumpFalseCall();
          EI_RETURN_IF_ERROR(check_value(call->cond_value_index(), "the condition"));
          int32_t destination = call->destination_instruction();
          // Upstream's emitter jumps to instruction_count when a cond is the chain's last step.
          if (destination < 0 || static_cast<size_t>(destination) > instruction_count) {
            return error(ErrorCode::kMalformed, where(), "jump destination ", destination, " is out of range (",
                         instruction_count, " instructions)");
          }
          plan.has_jumps = true;
          Tag tag = plan.values[static_cast<size_t>(call->cond_value_index())].value.tag;
          if (tag != Tag::kBool && tag != Tag::kTensor) {
            return error(ErrorCode::kMalformed, where(), "jump condition is ", tag_name(tag),
                         ", not a Bool or a bool tensor");
          }
          break;
        }
        case ei_pte::InstructionArguments::FreeCall: {
          const auto* call = instruction->instr_args_as_FreeCall();
          EI_RETURN_IF_ERROR(check_value(call->value_index(), "the freed value"));
          if (plan.values[static_cast<size_t>(call->value_index())].value.tag != Tag::kTensor) {
            return error(ErrorCode::kMalformed, where(), "FreeCall names value ", call->value_index(),
                         ", which is not a tensor");
          }
          break;
        }
        default:
          return error(ErrorCode::kMalformed, where(), "unknown instruction type ",
                       static_cast<int>(instruction->instr_args_type()));
      }
    }
  }
  return Status::Ok();
}

namespace {

// For each delegate that one DelegateCall runs, the rows of each argument that the rest of
// the method reads (BackendInitContext::arg_row_limits); 0 where all of it is read. An output
// qualifies only when one later aten::select_copy.int_out reads it along its second-to-last
// dimension, at a constant index, with every dimension before that of size 1. Nothing else
// may refer to it: no other instruction, list, method input or output. Methods with jumps get
// no limits.
std::vector<std::vector<int64_t>> delegate_row_limits(const MethodPlan& plan, size_t delegate_count) {
  std::vector<std::vector<int64_t>> limits(delegate_count);
  const auto* chains = plan.plan->chains();
  if (plan.has_jumps || chains == nullptr) return limits;

  std::vector<int> references(plan.values.size(), 0);
  // Values a caller or an instruction may set: method inputs and outputs, MoveCall targets.
  std::vector<bool> settable(plan.values.size(), false);
  auto refer = [&](int32_t index) {
    if (index >= 0 && static_cast<size_t>(index) < references.size()) ++references[static_cast<size_t>(index)];
  };
  for (const auto* io : {plan.plan->inputs(), plan.plan->outputs()}) {
    if (io == nullptr) continue;
    for (int32_t index : *io) {
      refer(index);
      if (index >= 0 && static_cast<size_t>(index) < settable.size()) settable[static_cast<size_t>(index)] = true;
    }
  }
  // A tensor inside a list (the inputs of cat, for example) is read through the list, so it
  // counts as read twice more and never gets a limit.
  for (const ValueTemplate& slot : plan.values) {
    for (int32_t item : slot.item_indices) {
      refer(item);
      refer(item);
    }
  }
  struct Call {
    const flatbuffers::Vector<int32_t>* args;
    const flatbuffers::Vector<flatbuffers::Offset<ei_pte::Instruction>>* instructions;
    uoffset_t pc;
  };
  std::vector<std::vector<Call>> calls(delegate_count);
  for (const auto* chain : *chains) {
    const auto* instructions = chain->instructions();
    if (instructions == nullptr) continue;
    for (uoffset_t pc = 0; pc < instructions->size(); ++pc) {
      const auto* instruction = instructions->Get(pc);
      const flatbuffers::Vector<int32_t>* args = nullptr;
      if (const auto* kernel = instruction->instr_args_as_KernelCall()) args = kernel->args();
      if (const auto* delegate = instruction->instr_args_as_DelegateCall()) {
        args = delegate->args();
        size_t index = static_cast<size_t>(delegate->delegate_index());
        if (index < delegate_count) calls[index].push_back({args, instructions, pc});
      }
      if (const auto* move = instruction->instr_args_as_MoveCall()) {
        refer(move->move_from());
        refer(move->move_to());
        settable[static_cast<size_t>(move->move_to())] = true;
      }
      if (const auto* free = instruction->instr_args_as_FreeCall()) refer(free->value_index());
      if (args != nullptr) {
        for (int32_t index : *args) refer(index);
      }
    }
  }

  auto constant_int = [&](int32_t index, int64_t& value) {
    const ValueTemplate& slot = plan.values[static_cast<size_t>(index)];
    if (slot.value.tag != Tag::kInt || settable[static_cast<size_t>(index)]) return false;
    value = slot.value.int_value;
    return true;
  };
  for (size_t d = 0; d < delegate_count; ++d) {
    if (calls[d].size() != 1 || calls[d].front().args == nullptr) continue;
    const Call& call = calls[d].front();
    limits[d].assign(call.args->size(), 0);
    for (uoffset_t j = 0; j < call.args->size(); ++j) {
      int32_t value = call.args->Get(j);
      const ValueTemplate& slot = plan.values[static_cast<size_t>(value)];
      if (slot.tensor_index < 0 || references[static_cast<size_t>(value)] != 2) continue;
      const Tensor& tensor = plan.tensors[static_cast<size_t>(slot.tensor_index)].tensor;
      if (tensor.dynamism != ShapeDynamism::kStatic || tensor.sizes.size() < 2) continue;
      // The delegate reads the tensor in memory order, so its rows are the tensor's rows only in
      // the default (contiguous) order.
      if (!tensor.has_default_dim_order()) continue;
      // The other reference: a later select_copy in the same chain that reads it first.
      for (uoffset_t pc = call.pc + 1; pc < call.instructions->size(); ++pc) {
        const auto* kernel = call.instructions->Get(pc)->instr_args_as_KernelCall();
        const auto* args = kernel == nullptr ? nullptr : kernel->args();
        if (args == nullptr || std::find(args->begin(), args->end(), value) == args->end()) continue;
        int64_t dim = 0, index = 0;
        size_t rank = tensor.sizes.size();
        bool select = plan.operator_names[static_cast<size_t>(kernel->op_index())] == "aten::select_copy.int_out" &&
                      args->size() == 5 && args->Get(0) == value &&
                      std::count(args->begin(), args->end(), value) == 1 && constant_int(args->Get(1), dim) &&
                      constant_int(args->Get(2), index);
        if (select && dim < 0) dim += static_cast<int64_t>(rank);
        bool leading_ones = std::all_of(tensor.sizes.begin(), tensor.sizes.end() - 2, [](int64_t size) { return size == 1; });
        if (select && dim == static_cast<int64_t>(rank) - 2 && leading_ones && index >= 0 &&
            index < tensor.sizes[rank - 2]) {
          limits[d][j] = index + 1;
        }
        break;
      }
    }
  }
  return limits;
}

}  // namespace

Status Program::prepare_delegates(MethodPlan& plan) {
  const auto* delegates = plan.plan->delegates();
  if (delegates == nullptr) return Status::Ok();
  std::vector<std::vector<int64_t>> row_limits = delegate_row_limits(plan, delegates->size());
  for (uoffset_t i = 0; i < delegates->size(); ++i) {
    const auto* delegate = delegates->Get(i);
    std::string id = delegate->id() == nullptr ? "" : delegate->id()->str();
    plan.backend_ids.push_back(id);
    plan.delegates.push_back(nullptr);

    const auto* processed = delegate->processed();
    if (processed == nullptr) return error(ErrorCode::kMalformed, "delegate ", i, " (", id, ") has no payload");
    std::span<const uint8_t> payload;
    if (processed->location() == ei_pte::DataLocation::INLINE) {
      const auto* inline_data = program_->backend_delegate_data();
      if (inline_data == nullptr || processed->index() >= inline_data->size()) {
        return error(ErrorCode::kMalformed, "delegate ", i, " (", id, ") payload index ", processed->index(),
                     " is out of range of backend_delegate_data");
      }
      const auto* bytes = inline_data->Get(processed->index())->data();
      if (bytes != nullptr) payload = std::span<const uint8_t>(bytes->data(), bytes->size());
    } else if (processed->location() == ei_pte::DataLocation::SEGMENT) {
      if (processed->index() >= segments_.size()) {
        return error(ErrorCode::kMalformed, "delegate ", i, " (", id, ") payload segment ", processed->index(),
                     " is out of range (", segments_.size(), " segments)");
      }
      payload = segments_[processed->index()];
    } else {
      return error(ErrorCode::kMalformed, "delegate ", i, " (", id, ") has unknown payload location ",
                   static_cast<int>(processed->location()));
    }

    const Backend* backend = find_backend(id);
    if (backend == nullptr) {
      bool known = std::any_of(plan.problems.begin(), plan.problems.end(),
                               [&](const Problem& problem) { return problem.message == backend_problem(id); });
      if (!known) plan.problems.push_back({ErrorCode::kUnsupportedBackend, backend_problem(id)});
      continue;
    }

    std::vector<CompileSpec> specs;
    if (const auto* flat_specs = delegate->compile_specs()) {
      for (const auto* spec : *flat_specs) {
        CompileSpec entry;
        if (spec->key() != nullptr) entry.key = spec->key()->string_view();
        if (spec->value() != nullptr) entry.value = std::span<const uint8_t>(spec->value()->data(), spec->value()->size());
        specs.push_back(entry);
      }
    }
    BackendInitContext context{payload, specs, named_data_.get(), options_.threads, pool_.get(),
                               options_.max_planned_bytes,
                               [this](const void* data, size_t size) { source_->release(data, size); },
                               row_limits[i]};
    auto handle = backend->init(context);
    if (!handle.ok()) {
      Status status = handle.status().with_context("delegate " + std::to_string(i) + " (" + id + "): ");
      if (!options_.allow_unsupported) return status;
      plan.problems.push_back({status.code(), status.message()});
      continue;
    }
    plan.delegates.back() = std::shared_ptr<const DelegateHandle>(std::move(handle).value());
  }
  return Status::Ok();
}

Result<std::unique_ptr<MethodInstance>> Program::create_instance(MethodPlan& plan) {
  auto instance = std::make_unique<MethodInstance>();
  instance->arenas.resize(plan.arena_sizes.size());
  for (size_t id = 1; id < plan.arena_sizes.size(); ++id) {
    size_t size = static_cast<size_t>(plan.arena_sizes[id]);
    instance->arenas[id] = allocate_aligned(size);
    if (!instance->arenas[id]) {
      return error(ErrorCode::kOutOfMemory, "cannot allocate ", size, " bytes for arena ", id, " of method '",
                   plan.name, "'");
    }
  }

  instance->tensors.reserve(plan.tensors.size());
  for (const TensorTemplate& entry : plan.tensors) {
    Tensor& tensor = instance->tensors.emplace_back(entry.tensor);
    if (entry.memory_id >= 0) {
      tensor.data = instance->arenas[static_cast<size_t>(entry.memory_id)].get() + entry.offset;
      if (entry.initial != nullptr) {
        std::memcpy(tensor.data, entry.initial, tensor.capacity);
        if (tensor.dtype == ScalarType::kBool) normalize_bools(tensor.data, tensor.capacity);
      }
    }
  }

  instance->values.resize(plan.values.size());
  for (size_t i = 0; i < plan.values.size(); ++i) reset_value(plan, *instance, i);
  return instance;
}

Result<std::vector<IoValue>> Program::execute(std::string_view method_name, const std::vector<IoValue>& inputs) {
  std::vector<std::vector<IoValue>> batch;
  batch.push_back(inputs);
  return std::move(execute_batch(method_name, batch).front());
}

std::vector<Result<std::vector<IoValue>>> Program::execute_batch(std::string_view method_name,
                                                                 const std::vector<std::vector<IoValue>>& inputs) {
  std::vector<Result<std::vector<IoValue>>> results;
  results.reserve(inputs.size());
  auto plan_or = method(method_name);
  if (!plan_or.ok() || !plan_or.value()->runnable()) {
    Status status = plan_or.ok() ? Status(plan_or.value()->problems.front().code,
                                          "method '" + plan_or.value()->name + "' cannot run: " +
                                              plan_or.value()->problems.front().message)
                                 : plan_or.status();
    for (size_t i = 0; i < inputs.size(); ++i) results.emplace_back(status);
    return results;
  }
  MethodPlan& plan = *plan_or.value();

  // One method instance per call, from the plan's pool.
  std::vector<std::unique_ptr<MethodInstance>> instances(inputs.size());
  std::vector<Call> calls(inputs.size());
  {
    std::lock_guard<std::mutex> lock(plan.pool_mutex_);
    for (auto& instance : instances) {
      if (plan.pool_.empty()) break;
      instance = std::move(plan.pool_.back());
      plan.pool_.pop_back();
    }
  }
  for (size_t i = 0; i < inputs.size(); ++i) {
    calls[i].inputs = &inputs[i];
    if (!instances[i]) {
      auto created = create_instance(plan);
      if (created.ok()) {
        instances[i] = std::move(created).value();
      } else {
        calls[i].status = created.status();
      }
    }
    calls[i].instance = instances[i].get();
  }

  ThreadPool::CallScope call_scope(pool_.get());
  size_t threads = pool_ ? static_cast<size_t>(pool_->size()) : 1;
  if (plan.has_jumps) {
    for (Call& call : calls) run(plan, std::span<Call>(&call, 1), pool_.get());
  } else if (threads > 1 && calls.size() >= kCallsPerThreadShare * threads) {
    // A large batch is dealt out to the threads in shares, and each thread runs its share
    // through the whole method by itself. Each call's values then stay in one core's cache from
    // one node to the next. Split node by node between the threads, about half of every operand
    // first had to come over from the other core. Each thread reads all the weights, once per
    // share. With 8 concurrent ViT-B/32 calls on 2 threads this made 2-4 % more images per
    // second (2026-12-05).
    parallel_for(pool_.get(), threads, 1, [&](size_t begin, size_t end) {
      for (size_t share = begin; share < end; ++share) {
        size_t first = share * calls.size() / threads, last = (share + 1) * calls.size() / threads;
        std::span<Call> part(calls.data() + first, last - first);
        // A share may run on a pool thread, where an exception would end the process: memory
        // running out fails the share's calls instead.
        try {
          run(plan, part, nullptr);
        } catch (const std::bad_alloc&) {
          for (Call& call : part) {
            if (call.status.ok()) call.status = error(ErrorCode::kOutOfMemory, "ran out of memory while running the call: make fewer calls at once or lower maxBatch");
          }
        }
      }
    });
  } else {
    run(plan, calls, pool_.get());
  }

  {
    std::lock_guard<std::mutex> lock(plan.pool_mutex_);
    for (auto& instance : instances) {
      if (instance) plan.pool_.push_back(std::move(instance));
    }
  }
  for (Call& call : calls) {
    if (call.status.ok()) {
      results.emplace_back(std::move(call.outputs));
    } else {
      results.emplace_back(call.status.with_context("method '" + plan.name + "': "));
    }
  }
  return results;
}

namespace {

Status bind_input(size_t index, const ValueMeta& meta, EValue& value, const IoValue& input) {
  auto fail = [&](const std::string& message) {
    return error(ErrorCode::kInvalidInput, "input ", index, ": ", message);
  };
  switch (meta.tag) {
    case Tag::kTensor: {
      if (input.tag != Tag::kTensor) return fail(std::string("expected a tensor, got ") + tag_name(input.tag));
      Tensor& tensor = *value.tensor;
      if (input.dtype != tensor.dtype) {
        return fail("expected dtype " + dtype_name(tensor.dtype) + ", got " + dtype_name(input.dtype));
      }
      if (input.sizes.size() != tensor.upper_bound.size()) {
        Tensor expected;
        expected.sizes = tensor.upper_bound;
        return fail("expected rank " + std::to_string(expected.sizes.size()) + " (shape " + expected.shape_string() +
                    "), got rank " + std::to_string(input.sizes.size()));
      }
      for (size_t d = 0; d < input.sizes.size(); ++d) {
        int64_t size = input.sizes[d];
        int64_t bound = tensor.upper_bound[d];
        bool valid = tensor.dynamism == ShapeDynamism::kStatic          ? size == bound
                     : tensor.dynamism == ShapeDynamism::kDynamicBound ? (size >= 0 && size <= bound)
                                                                         : size >= 0;
        if (!valid) {
          Tensor expected;
          expected.sizes = tensor.upper_bound;
          return fail("size " + std::to_string(size) + " of dimension " + std::to_string(d) +
                      (tensor.dynamism == ShapeDynamism::kStatic ? " does not match the static shape "
                                                                  : " exceeds the upper bound ") +
                      expected.shape_string());
        }
      }
      int64_t numel = checked_numel(input.sizes);
      size_t nbytes = static_cast<size_t>(numel) * element_size(input.dtype);
      if (numel < 0 || nbytes != input.nbytes) return fail("data size does not match the shape");

      tensor.sizes = input.sizes;
      tensor.update_strides();
      if (tensor.data == nullptr || tensor.capacity < nbytes) {
        if (tensor.is_constant) return fail("the method input is a constant tensor");
        if (tensor.dynamism == ShapeDynamism::kDynamicUnbound || tensor.data == nullptr) {
          auto storage = allocate_aligned(nbytes == 0 ? 1 : nbytes);
          if (!storage) return error(ErrorCode::kOutOfMemory, "cannot allocate ", nbytes, " bytes for input ", index);
          tensor.owned = std::move(storage);
          tensor.data = tensor.owned.get();
          tensor.capacity = nbytes;
        } else {
          return fail("needs " + std::to_string(nbytes) + " bytes but " + std::to_string(tensor.capacity) +
                      " are planned");
        }
      }
      copy_from_contiguous(tensor, input.bytes.get());
      if (tensor.dtype == ScalarType::kBool) normalize_bools(tensor.data, nbytes);
      return Status::Ok();
    }
    case Tag::kInt:
      if (input.tag != Tag::kInt) return fail(std::string("expected an Int, got ") + tag_name(input.tag));
      value.int_value = input.int_value;
      return Status::Ok();
    case Tag::kDouble:
      if (input.tag == Tag::kInt) {
        value.double_value = static_cast<double>(input.int_value);
      } else if (input.tag == Tag::kDouble) {
        value.double_value = input.double_value;
      } else {
        return fail(std::string("expected a Double, got ") + tag_name(input.tag));
      }
      return Status::Ok();
    case Tag::kBool:
      if (input.tag != Tag::kBool) return fail(std::string("expected a Bool, got ") + tag_name(input.tag));
      value.bool_value = input.bool_value;
      return Status::Ok();
    case Tag::kNone:
      return Status::Ok();
    default:
      return fail(std::string("inputs of type ") + tag_name(meta.tag) + " cannot be passed through the API");
  }
}

// Every tensor an instruction reads must have memory behind it unless it is empty.
Status check_memory(const EValue* value, int32_t index) {
  auto check = [index](const Tensor* tensor) -> Status {
    if (tensor != nullptr && tensor->data == nullptr && tensor->dynamism != ShapeDynamism::kDynamicUnbound &&
        tensor->numel() > 0) {
      return error(ErrorCode::kMalformed, "value ", index,
                   " is a tensor with no memory: it is neither planned, constant nor a method input");
    }
    return Status::Ok();
  };
  if (value->tag == Tag::kTensor) return check(value->tensor);
  if (value->tag == Tag::kTensorList || value->tag == Tag::kOptionalTensorList) {
    for (const EValue* item : value->items) {
      if (item != nullptr && item->tag == Tag::kTensor) EI_RETURN_IF_ERROR(check(item->tensor));
    }
  }
  return Status::Ok();
}

Result<IoValue> collect_output(size_t index, const EValue& value) {
  IoValue output;
  output.tag = value.tag;
  switch (value.tag) {
    case Tag::kTensor: {
      const Tensor& tensor = *value.tensor;
      output.dtype = tensor.dtype;
      output.sizes = tensor.sizes;
      output.nbytes = tensor.nbytes();
      // Checked before allocating: a program can declare a large output that nothing wrote.
      if (output.nbytes > 0 && (tensor.data == nullptr || output.nbytes > tensor.capacity)) {
        return error(ErrorCode::kMalformed, "output ", index, " (", tensor.shape_string(), ", ",
                     dtype_name(tensor.dtype), ") has no memory of that size: it is neither planned, constant, an "
                     "input nor written by an operator");
      }
      output.bytes = allocate_aligned(output.nbytes == 0 ? 1 : output.nbytes);
      if (!output.bytes) return error(ErrorCode::kOutOfMemory, "cannot allocate ", output.nbytes, " bytes for output ", index);
      if (output.nbytes > 0) copy_to_contiguous(tensor, output.bytes.get());
      break;
    }
    case Tag::kInt: output.int_value = value.int_value; break;
    case Tag::kDouble: output.double_value = value.double_value; break;
    case Tag::kBool: output.bool_value = value.bool_value; break;
    case Tag::kString: output.string_value = std::string(value.string_value); break;
    case Tag::kNone: break;
    default:
      return error(ErrorCode::kInvalidInput, "output ", index, " is a ", tag_name(value.tag),
                   ", which the API cannot return");
  }
  return output;
}

}  // namespace

void Program::run(MethodPlan& plan, std::span<Call> calls, ThreadPool* pool) {
  const auto* flat_inputs = plan.plan->inputs();
  size_t input_count = flat_inputs == nullptr ? 0 : flat_inputs->size();
  std::vector<Call*> live;
  for (Call& call : calls) {
    if (!call.status.ok()) continue;
    Status status = [&]() -> Status {
      if (call.inputs->size() != input_count) {
        return error(ErrorCode::kInvalidInput, "expected ", input_count, input_count == 1 ? " input" : " inputs", ", got ",
                     call.inputs->size());
      }
      reset_move_destinations(plan, *call.instance);
      for (size_t i = 0; i < input_count; ++i) {
        EValue& value = call.instance->values[static_cast<size_t>(flat_inputs->Get(static_cast<uoffset_t>(i)))];
        EI_RETURN_IF_ERROR(bind_input(i, plan.inputs[i], value, (*call.inputs)[i]));
      }
      return Status::Ok();
    }();
    if (status.ok()) {
      live.push_back(&call);
    } else {
      call.status = status;
    }
  }

  // Runs step(call, context) for every live call: with the whole pool when one call is left,
  // else one call per thread, each running its loops on its own thread.
  auto for_each_call = [&](auto&& step) {
    if (live.size() == 1) {
      KernelContext context;
      context.pool = pool;
      live.front()->status = step(*live.front(), context);
    } else {
      parallel_for(pool, live.size(), 1, [&](size_t begin, size_t end) {
        KernelContext context;
        for (size_t i = begin; i < end; ++i) live[i]->status = step(*live[i], context);
      });
    }
  };
  // Gathers an instruction's argument values for one call, checking that each has memory.
  auto gather_args = [&](Call& call, const flatbuffers::Vector<int32_t>* indices) -> Status {
    call.args.clear();
    if (indices == nullptr) return Status::Ok();
    for (int32_t arg : *indices) {
      EValue* value = &call.instance->values[static_cast<size_t>(arg)];
      EI_RETURN_IF_ERROR(check_memory(value, arg));
      call.args.push_back(value);
    }
    return Status::Ok();
  };
  auto drop_failed = [&]() {
    live.erase(std::remove_if(live.begin(), live.end(), [](const Call* call) { return !call->status.ok(); }),
               live.end());
  };

  uint64_t steps = 0;
  const auto* chains = plan.plan->chains();
  size_t chain_count = chains == nullptr ? 0 : chains->size();
  std::vector<std::span<EValue* const>> batch_args;
  std::vector<Status> batch_statuses;
  for (size_t c = 0; c < chain_count && !live.empty(); ++c) {
    const auto* instructions = chains->Get(static_cast<uoffset_t>(c))->instructions();
    size_t count = instructions == nullptr ? 0 : instructions->size();
    size_t pc = 0;
    while (pc < count && !live.empty()) {
      const auto* instruction = instructions->Get(static_cast<uoffset_t>(pc));
      auto where = [pc]() { return "instruction " + std::to_string(pc) + ": "; };
      if (++steps > options_.max_instructions) {
        for (Call* call : live) {
          call->status = error(ErrorCode::kExecutionLimit, "stopped after ", options_.max_instructions,
                               " instructions, the limit set by maxInstructions (--max-instructions in the CLI); "
                               "the program may loop forever, or raise the limit if it needs more");
        }
        live.clear();
        break;
      }
      size_t next = pc + 1;
      switch (instruction->instr_args_type()) {
        case ei_pte::InstructionArguments::KernelCall: {
          const auto* call = instruction->instr_args_as_KernelCall();
          const KernelInfo* kernel = plan.kernels[static_cast<size_t>(call->op_index())];
          for_each_call([&](Call& item, KernelContext& context) -> Status {
            Status status = gather_args(item, call->args());
            if (!status.ok()) return status.with_context(where());
            status = kernel->fn(context, item.args);
            if (status.ok()) return status;
            return status.with_context(where() + plan.operator_names[static_cast<size_t>(call->op_index())] + ": ");
          });
          break;
        }
        case ei_pte::InstructionArguments::DelegateCall: {
          const auto* call = instruction->instr_args_as_DelegateCall();
          size_t index = static_cast<size_t>(call->delegate_index());
          auto context_text = [&]() { return where() + "delegate " + plan.backend_ids[index] + ": "; };
          for (Call* item : live) {
            Status status = gather_args(*item, call->args());
            if (!status.ok()) item->status = status.with_context(where());
          }
          drop_failed();
          if (live.empty()) break;
          if (live.size() == 1) {
            KernelContext context;
            context.pool = pool;
            Status status = plan.delegates[index]->execute(context, live.front()->args);
            if (!status.ok()) live.front()->status = status.with_context(context_text());
          } else {
            batch_args.clear();
            for (Call* item : live) batch_args.emplace_back(item->args);
            batch_statuses.assign(live.size(), Status::Ok());
            plan.delegates[index]->execute_batch(pool, batch_args, batch_statuses);
            for (size_t i = 0; i < live.size(); ++i) {
              if (!batch_statuses[i].ok()) live[i]->status = batch_statuses[i].with_context(context_text());
            }
          }
          break;
        }
        case ei_pte::InstructionArguments::MoveCall: {
          const auto* call = instruction->instr_args_as_MoveCall();
          for (Call* item : live) {
            auto& values = item->instance->values;
            values[static_cast<size_t>(call->move_to())] = values[static_cast<size_t>(call->move_from())];
          }
          break;
        }
        case ei_pte::InstructionArguments::JumpFalseCall: {
          // Only one call runs here: methods with jumps run their calls one at a time.
          const auto* call = instruction->instr_args_as_JumpFalseCall();
          Call& item = *live.front();
          const EValue& condition = item.instance->values[static_cast<size_t>(call->cond_value_index())];
          bool truth = false;
          if (condition.tag == Tag::kBool) {
            truth = condition.bool_value;
          } else if (condition.tag == Tag::kTensor && condition.tensor->dtype == ScalarType::kBool &&
                     condition.tensor->data != nullptr) {
            // A bool tensor is true when every element is true.
            const uint8_t* bytes = condition.tensor->data_as<uint8_t>();
            truth = std::all_of(bytes, bytes + condition.tensor->numel(), [](uint8_t b) { return b != 0; });
          } else {
            item.status = error(ErrorCode::kKernelFailed, where(), "jump condition is not a Bool or a bool tensor");
          }
          if (!truth) next = static_cast<size_t>(call->destination_instruction());
          break;
        }
        case ei_pte::InstructionArguments::FreeCall: {
          const auto* call = instruction->instr_args_as_FreeCall();
          for (Call* item : live) {
            Tensor* tensor = item->instance->values[static_cast<size_t>(call->value_index())].tensor;
            // Only memory the runtime allocated can be released; planned memory stays with its arena.
            if (tensor != nullptr && tensor->owned) {
              tensor->owned.reset();
              tensor->data = nullptr;
              tensor->capacity = 0;
            }
          }
          break;
        }
        default:
          for (Call* item : live) item->status = error(ErrorCode::kMalformed, where(), "unknown instruction type");
          break;
      }
      drop_failed();
      pc = next;
    }
  }

  const auto* flat_outputs = plan.plan->outputs();
  size_t output_count = flat_outputs == nullptr ? 0 : flat_outputs->size();
  for (Call* call : live) {
    call->outputs.clear();
    call->outputs.reserve(output_count);
    for (size_t i = 0; i < output_count; ++i) {
      const EValue& value = call->instance->values[static_cast<size_t>(flat_outputs->Get(static_cast<uoffset_t>(i)))];
      auto output = collect_output(i, value);
      if (!output.ok()) {
        call->status = output.status();
        call->outputs.clear();
        break;
      }
      call->outputs.push_back(std::move(output).value());
    }
  }
}

}  // namespace ei
