// Values of an execution plan (EValues): the arguments of kernel and delegate calls.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "runtime/status.h"
#include "runtime/tensor.h"

namespace ei {

enum class Tag : uint8_t {
  kNone,
  kInt,
  kDouble,
  kBool,
  kString,
  kTensor,
  kTensorList,
  kIntList,
  kDoubleList,
  kBoolList,
  kOptionalTensorList,
};

const char* tag_name(Tag tag);

struct EValue {
  Tag tag = Tag::kNone;
  int64_t int_value = 0;
  double double_value = 0;
  bool bool_value = false;
  std::string_view string_value;  // points into the program's flatbuffer
  Tensor* tensor = nullptr;
  // IntList, TensorList and OptionalTensorList items are other values of the same plan,
  // resolved once at method load. OptionalTensorList uses nullptr for None.
  std::vector<EValue*> items;
  std::vector<double> double_items;
  std::vector<bool> bool_items;

  bool is_none() const { return tag == Tag::kNone; }
  bool is_tensor() const { return tag == Tag::kTensor; }
  bool is_scalar() const { return tag == Tag::kInt || tag == Tag::kDouble || tag == Tag::kBool; }

  // Accessors that check the tag and name the expected type in their error.
  Result<int64_t> to_int() const;
  Result<double> to_double() const;  // an Int, Double or Bool value as a double (a Scalar)
  Result<bool> to_bool() const;
  Result<Tensor*> to_tensor() const;
  Result<std::vector<int64_t>> to_int_list() const;
  Result<std::vector<Tensor*>> to_tensor_list() const;
  Result<std::vector<Tensor*>> to_optional_tensor_list() const;  // nullptr for None
  // A Tensor? argument: nullptr when the value is None.
  Result<Tensor*> to_optional_tensor() const;
};

}  // namespace ei
