#include "runtime/evalue.h"

namespace ei {

const char* tag_name(Tag tag) {
  switch (tag) {
    case Tag::kNone: return "None";
    case Tag::kInt: return "Int";
    case Tag::kDouble: return "Double";
    case Tag::kBool: return "Bool";
    case Tag::kString: return "String";
    case Tag::kTensor: return "Tensor";
    case Tag::kTensorList: return "TensorList";
    case Tag::kIntList: return "IntList";
    case Tag::kDoubleList: return "DoubleList";
    case Tag::kBoolList: return "BoolList";
    case Tag::kOptionalTensorList: return "OptionalTensorList";
  }
  return "unknown";
}

namespace {
Status wrong_tag(const char* expected, Tag actual) {
  return error(ErrorCode::kKernelFailed, "expected ", expected, " but the value is ", tag_name(actual));
}
}  // namespace

Result<int64_t> EValue::to_int() const {
  if (tag != Tag::kInt) return wrong_tag("Int", tag);
  return int_value;
}

Result<double> EValue::to_double() const {
  switch (tag) {
    case Tag::kDouble: return double_value;
    case Tag::kInt: return static_cast<double>(int_value);
    case Tag::kBool: return bool_value ? 1.0 : 0.0;
    default: return wrong_tag("a Scalar (Int, Double or Bool)", tag);
  }
}

Result<bool> EValue::to_bool() const {
  if (tag != Tag::kBool) return wrong_tag("Bool", tag);
  return bool_value;
}

Result<Tensor*> EValue::to_tensor() const {
  if (tag != Tag::kTensor || tensor == nullptr) return wrong_tag("Tensor", tag);
  return tensor;
}

Result<Tensor*> EValue::to_optional_tensor() const {
  if (tag == Tag::kNone) return static_cast<Tensor*>(nullptr);
  return to_tensor();
}

Result<std::vector<int64_t>> EValue::to_int_list() const {
  if (tag != Tag::kIntList) return wrong_tag("IntList", tag);
  std::vector<int64_t> out;
  out.reserve(items.size());
  for (const EValue* item : items) {
    if (item == nullptr || item->tag != Tag::kInt) return wrong_tag("Int items in an IntList", item ? item->tag : Tag::kNone);
    out.push_back(item->int_value);
  }
  return out;
}

Result<std::vector<Tensor*>> EValue::to_tensor_list() const {
  if (tag != Tag::kTensorList) return wrong_tag("TensorList", tag);
  std::vector<Tensor*> out;
  out.reserve(items.size());
  for (const EValue* item : items) {
    if (item == nullptr || item->tag != Tag::kTensor) {
      return wrong_tag("Tensor items in a TensorList", item ? item->tag : Tag::kNone);
    }
    out.push_back(item->tensor);
  }
  return out;
}

Result<std::vector<Tensor*>> EValue::to_optional_tensor_list() const {
  if (tag != Tag::kOptionalTensorList) return wrong_tag("OptionalTensorList", tag);
  std::vector<Tensor*> out;
  out.reserve(items.size());
  for (const EValue* item : items) {
    if (item == nullptr || item->tag == Tag::kNone) {
      out.push_back(nullptr);
    } else if (item->tag == Tag::kTensor) {
      out.push_back(item->tensor);
    } else {
      return wrong_tag("Tensor or None items in an OptionalTensorList", item->tag);
    }
  }
  return out;
}

}  // namespace ei
