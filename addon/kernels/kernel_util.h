// Helpers shared by the portable kernels: argument access with operator-named errors,
// dtype dispatch and conversion, type promotion, broadcasting iteration and output resizing.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "runtime/evalue.h"
#include "runtime/kernel.h"
#include "runtime/status.h"
#include "runtime/tensor.h"

namespace ei::kernels {

// ---------------------------------------------------------------------------------------
// Scalars

// A Scalar argument as the schema passes it: an Int, Double or Bool value.
struct Scalar {
  Tag tag = Tag::kInt;
  int64_t int_value = 0;
  double double_value = 0;
  bool bool_value = false;

  bool is_floating() const { return tag == Tag::kDouble; }
  bool is_integral() const { return tag == Tag::kInt; }
  bool is_bool() const { return tag == Tag::kBool; }
  double to_double() const {
    if (tag == Tag::kDouble) return double_value;
    if (tag == Tag::kBool) return bool_value ? 1.0 : 0.0;
    return static_cast<double>(int_value);
  }
  int64_t to_int() const;  // saturates a Double; NaN becomes 0
  // Converts to the compute type T with the same rules as cast_value.
  template <typename T>
  T to() const;
};

// ---------------------------------------------------------------------------------------
// Dtypes

bool is_floating_type(ScalarType type);
bool is_integral_type(ScalarType type, bool include_bool);
// The result type of combining two tensor dtypes, as torch.promote_types.
ScalarType promote_types(ScalarType a, ScalarType b);
// The result type of combining a tensor with a Scalar, as torch.result_type(tensor, scalar):
// the scalar counts only when its category (bool < integral < floating) is higher, and then
// it brings int64 or float32.
ScalarType promote_type_with_scalar(ScalarType tensor_type, const Scalar& scalar);
// Whether a value of `from` may be stored in `to`, as torch.can_cast (no floating to
// integral, no non-bool to bool).
bool can_cast(ScalarType from, ScalarType to);

// Converts one value. Floating values stored into integral types saturate, and NaN becomes
// 0, so that no conversion is undefined behavior. Any nonzero value becomes true as bool.
template <typename To, typename From>
inline To cast_value(From value) {
  if constexpr (std::is_same_v<To, From>) {
    return value;
  } else if constexpr (std::is_same_v<To, bool>) {
    return value != From(0);
  } else if constexpr (std::is_floating_point_v<From> && std::is_integral_v<To>) {
    if (std::isnan(value)) return 0;
    // Bounds as From: max() of int64 rounds up to 2^63, so compare with >=.
    constexpr From lo = static_cast<From>(std::numeric_limits<To>::min());
    constexpr From hi = static_cast<From>(std::numeric_limits<To>::max());
    if (value <= lo) return std::numeric_limits<To>::min();
    if (value >= hi) return std::numeric_limits<To>::max();
    return static_cast<To>(value);
  } else if constexpr (std::is_integral_v<From> && std::is_integral_v<To> &&
                       !std::is_same_v<From, bool>) {
    // Integral narrowing wraps modulo 2^bits (well defined since C++20).
    return static_cast<To>(value);
  } else {
    return static_cast<To>(value);
  }
}

template <typename T>
T Scalar::to() const {
  if (tag == Tag::kDouble) return cast_value<T>(double_value);
  if (tag == Tag::kBool) return cast_value<T>(bool_value);
  return cast_value<T>(int_value);
}

template <typename T>
constexpr ScalarType scalar_type_of() {
  if constexpr (std::is_same_v<T, bool>) return ScalarType::kBool;
  else if constexpr (std::is_same_v<T, uint8_t>) return ScalarType::kByte;
  else if constexpr (std::is_same_v<T, int8_t>) return ScalarType::kChar;
  else if constexpr (std::is_same_v<T, int16_t>) return ScalarType::kShort;
  else if constexpr (std::is_same_v<T, int32_t>) return ScalarType::kInt;
  else if constexpr (std::is_same_v<T, int64_t>) return ScalarType::kLong;
  else if constexpr (std::is_same_v<T, float>) return ScalarType::kFloat;
  else if constexpr (std::is_same_v<T, double>) return ScalarType::kDouble;
  else static_assert(!sizeof(T), "no ScalarType for this C++ type");
}

// Dtype sets that a kernel accepts for a dispatch.
enum class DtypeSet : uint8_t {
  kAll,       // bool, uint8, int8, int16, int32, int64, float32, float64
  kReal,      // kAll without bool
  kFloating,  // float32, float64
  kIntegral,  // kAll without the floating types
};

constexpr bool dtype_in_set(ScalarType type, DtypeSet set) {
  switch (type) {
    case ScalarType::kBool: return set == DtypeSet::kAll || set == DtypeSet::kIntegral;
    case ScalarType::kByte:
    case ScalarType::kChar:
    case ScalarType::kShort:
    case ScalarType::kInt:
    case ScalarType::kLong: return set != DtypeSet::kFloating;
    case ScalarType::kFloat:
    case ScalarType::kDouble: return set != DtypeSet::kIntegral;
    default: return false;
  }
}

Status unsupported_dtype(std::string_view op, std::string_view arg, ScalarType type);

// Calls fn.template operator()<T>() with the C++ type T of `type`, or returns
// kUnsupportedDtype naming the operator and argument when `type` is outside kSet. Only the
// types of kSet are instantiated.
template <DtypeSet kSet, typename Fn>
Status dispatch(ScalarType type, std::string_view op, std::string_view arg, Fn&& fn) {
  if (!dtype_in_set(type, kSet)) return unsupported_dtype(op, arg, type);
  constexpr bool kWithBool = dtype_in_set(ScalarType::kBool, kSet);
  constexpr bool kWithInt = dtype_in_set(ScalarType::kLong, kSet);
  constexpr bool kWithFloat = dtype_in_set(ScalarType::kFloat, kSet);
  if constexpr (kWithBool) {
    if (type == ScalarType::kBool) return fn.template operator()<bool>();
  }
  if constexpr (kWithInt) {
    switch (type) {
      case ScalarType::kByte: return fn.template operator()<uint8_t>();
      case ScalarType::kChar: return fn.template operator()<int8_t>();
      case ScalarType::kShort: return fn.template operator()<int16_t>();
      case ScalarType::kInt: return fn.template operator()<int32_t>();
      case ScalarType::kLong: return fn.template operator()<int64_t>();
      default: break;
    }
  }
  if constexpr (kWithFloat) {
    if (type == ScalarType::kFloat) return fn.template operator()<float>();
    if (type == ScalarType::kDouble) return fn.template operator()<double>();
  }
  return unsupported_dtype(op, arg, type);
}

// Dispatches to the type that elementwise arithmetic runs in: double for float64, float
// for float32, and int64 for every integral type and bool (results are converted back to
// the output dtype, and narrowing wraps, so add/sub/mul match computing in the narrow type).
template <typename Fn>
Status dispatch_compute(ScalarType common, std::string_view op, Fn&& fn) {
  switch (common) {
    case ScalarType::kFloat: return fn.template operator()<float>();
    case ScalarType::kDouble: return fn.template operator()<double>();
    case ScalarType::kBool:
    case ScalarType::kByte:
    case ScalarType::kChar:
    case ScalarType::kShort:
    case ScalarType::kInt:
    case ScalarType::kLong: return fn.template operator()<int64_t>();
    default: return unsupported_dtype(op, "common type of the inputs", common);
  }
}

// Converts `count` elements between two supported dtypes. The ranges must not overlap
// unless src == dst and both dtypes are equal.
void convert_elements(const void* src, ScalarType src_type, void* dst, ScalarType dst_type,
                      size_t count);

// ---------------------------------------------------------------------------------------
// Arguments

// A kernel's arguments, with accessors whose errors name the operator and the argument.
class Args {
 public:
  Args(std::string_view op, std::span<EValue* const> values) : op_(op), values_(values) {}

  std::string_view op() const { return op_; }
  size_t size() const { return values_.size(); }

  // Accepts exactly `schema_args` values (the schema's arguments, outs included) or
  // `schema_args + returns` values (followed by the return values).
  Status check_count(size_t schema_args, size_t returns) const;

  Status fail(std::string_view arg, const std::string& problem) const;

  // A tensor input with a supported dtype whose data covers its elements.
  Result<Tensor*> tensor(size_t index, std::string_view name) const;
  // A Tensor? input: nullptr for None.
  Result<Tensor*> optional_tensor(size_t index, std::string_view name) const;
  // An out tensor (data may be resized later, so only the dtype is checked).
  Result<Tensor*> out_tensor(size_t index, std::string_view name) const;
  Result<std::vector<Tensor*>> tensor_list(size_t index, std::string_view name) const;
  Result<std::vector<Tensor*>> optional_tensor_list(size_t index, std::string_view name) const;
  Result<Scalar> scalar(size_t index, std::string_view name) const;
  Result<std::optional<Scalar>> optional_scalar(size_t index, std::string_view name) const;
  Result<int64_t> int_value(size_t index, std::string_view name) const;
  Result<std::optional<int64_t>> optional_int(size_t index, std::string_view name) const;
  Result<bool> bool_value(size_t index, std::string_view name) const;
  Result<double> double_value(size_t index, std::string_view name) const;
  Result<std::vector<int64_t>> int_list(size_t index, std::string_view name) const;
  // An int[]? argument: nullopt for None.
  Result<std::optional<std::vector<int64_t>>> optional_int_list(size_t index,
                                                                std::string_view name) const;
  Result<std::optional<std::vector<double>>> optional_double_list(size_t index,
                                                                  std::string_view name) const;
  // A str? argument: nullopt for None.
  Result<std::optional<std::string_view>> optional_string(size_t index,
                                                          std::string_view name) const;
  // A ScalarType? argument (an Int holding the c10::ScalarType number): nullopt for None.
  Result<std::optional<ScalarType>> optional_dtype(size_t index, std::string_view name) const;

 private:
  Result<const EValue*> value(size_t index, std::string_view name) const;
  Status check_input_tensor(const Tensor& tensor, std::string_view name) const;

  std::string_view op_;
  std::span<EValue* const> values_;
};

// ---------------------------------------------------------------------------------------
// Shapes and layout

// Wraps a possibly negative dim into [0, rank). Rank 0 tensors accept -1 and 0, as ATen.
Result<int64_t> wrap_dim(const Args& args, std::string_view name, int64_t dim, int64_t rank);

// Strides in elements of a contiguous tensor of `sizes` laid out in `dim_order`.
std::vector<int64_t> strides_for(std::span<const int64_t> sizes, std::span<const uint8_t> dim_order);
std::vector<int64_t> contiguous_strides(std::span<const int64_t> sizes);

// Rejects tensors whose dim order is not the identity, naming the argument.
Status require_default_dim_order(const Args& args, const Tensor& tensor, std::string_view name);

// Resizes an out tensor, adding the operator and argument to a failure, and checks that the
// dtype is supported and the data covers the new size.
Status resize_output(const Args& args, Tensor& out, std::span<const int64_t> sizes,
                     std::string_view name = "out");

// The broadcast shape of two shapes, or an error naming both.
Result<std::vector<int64_t>> broadcast_shapes(const Args& args, std::span<const int64_t> a,
                                              std::span<const int64_t> b);

// Whether [a, a + a_bytes) and [b, b + b_bytes) share a byte.
bool ranges_overlap(const void* a, size_t a_bytes, const void* b, size_t b_bytes);
// Whether two tensors' data overlap.
bool tensors_overlap(const Tensor& a, const Tensor& b);

int64_t shape_numel(std::span<const int64_t> sizes);  // for shapes already validated
std::string shape_to_string(std::span<const int64_t> sizes);

// Calls fn(out_index, in_indices) for every element of a broadcast output in row-major
// order, where in_indices[k] is the linear index of the matching element of input k.
template <size_t N, typename Fn>
void broadcast_for_each(std::span<const int64_t> out_sizes,
                        const std::array<std::span<const int64_t>, N>& in_sizes, Fn&& fn) {
  const int64_t numel = shape_numel(out_sizes);
  if (numel <= 0) return;
  bool all_same = true;
  for (size_t k = 0; k < N; ++k) {
    if (!std::equal(in_sizes[k].begin(), in_sizes[k].end(), out_sizes.begin(), out_sizes.end())) {
      all_same = false;
    }
  }
  std::array<int64_t, N> offsets{};
  if (all_same) {
    for (int64_t i = 0; i < numel; ++i) {
      offsets.fill(i);
      fn(i, offsets);
    }
    return;
  }
  const size_t rank = out_sizes.size();
  // strides[k][d]: step of input k's linear index when output dim d advances (0 where the
  // input is broadcast along d).
  std::array<std::vector<int64_t>, N> strides;
  for (size_t k = 0; k < N; ++k) {
    strides[k].assign(rank, 0);
    const size_t in_rank = in_sizes[k].size();
    int64_t step = 1;
    for (size_t j = 0; j < in_rank; ++j) {
      const size_t in_d = in_rank - 1 - j;
      const size_t out_d = rank - 1 - j;
      if (in_sizes[k][in_d] != 1) strides[k][out_d] = step;
      step *= in_sizes[k][in_d];
    }
  }
  if (rank == 0) {
    fn(0, offsets);
    return;
  }
  const int64_t inner = out_sizes[rank - 1];
  std::array<int64_t, N> inner_stride;
  for (size_t k = 0; k < N; ++k) inner_stride[k] = strides[k][rank - 1];
  std::vector<int64_t> counter(rank, 0);
  std::array<int64_t, N> current;
  for (int64_t base = 0; base < numel; base += inner) {
    for (int64_t j = 0; j < inner; ++j) {
      for (size_t k = 0; k < N; ++k) current[k] = offsets[k] + j * inner_stride[k];
      fn(base + j, current);
    }
    for (size_t d = rank - 1; d-- > 0;) {
      ++counter[d];
      for (size_t k = 0; k < N; ++k) offsets[k] += strides[k][d];
      if (counter[d] < out_sizes[d]) break;
      for (size_t k = 0; k < N; ++k) offsets[k] -= strides[k][d] * out_sizes[d];
      counter[d] = 0;
    }
  }
}

// Copies the elements of a strided view into another strided layout, both in elements of
// `element_bytes` bytes: dst[sum(i_d * dst_strides[d])] = src[src_offset + sum(i_d * src_strides[d])]
// for every index i of `sizes`. The caller guarantees every addressed element is in bounds
// and that src and dst do not overlap.
void strided_copy(const void* src, std::span<const int64_t> src_strides, int64_t src_offset, void* dst,
                  std::span<const int64_t> dst_strides, std::span<const int64_t> sizes, size_t element_bytes);

// Copies `input` (any dim order) into `out` (any dim order) of the same sizes and dtype,
// through a temporary when they overlap.
void copy_between_layouts(const Tensor& input, Tensor& out);

// ---------------------------------------------------------------------------------------
// Typed views of tensor data

// A tensor's elements as T: the tensor's own memory when its dtype is already T and does not
// overlap `out`, else a converted copy. With allow_exact_alias, memory that is exactly
// out's (same start, count and dtype) is read in place, which suits kernels that read each
// element before writing the same element.
template <typename T>
class InputView {
 public:
  InputView(const Tensor& tensor, const Tensor* out = nullptr, bool allow_exact_alias = true) {
    const size_t count = static_cast<size_t>(tensor.numel());
    const bool same_type = tensor.dtype == scalar_type_of<T>();
    // Reading in place is safe when out is exactly this tensor's memory (each element is
    // read before the same element is written) or when the ranges do not overlap.
    bool must_copy = !same_type;
    if (same_type && out != nullptr && tensors_overlap(tensor, *out)) {
      must_copy = !(allow_exact_alias && tensor.data == out->data && tensor.numel() == out->numel() &&
                    tensor.dtype == out->dtype);
    }
    if (!must_copy) {
      data_ = tensor.data_as<T>();
      return;
    }
    storage_ = std::make_unique<T[]>(count > 0 ? count : 1);
    convert_elements(tensor.data, tensor.dtype, storage_.get(), scalar_type_of<T>(), count);
    data_ = storage_.get();
  }
  const T* data() const { return data_; }
  const T& operator[](int64_t i) const { return data_[i]; }

 private:
  const T* data_ = nullptr;
  std::unique_ptr<T[]> storage_;
};

// Storage to write an output as T: the out tensor's own memory when its dtype is T, else a
// buffer that commit() converts into the out tensor.
template <typename T>
class OutputView {
 public:
  explicit OutputView(Tensor& out) : out_(out) {
    if (out.dtype == scalar_type_of<T>()) {
      data_ = out.data_as<T>();
    } else {
      const size_t count = static_cast<size_t>(out.numel());
      storage_ = std::make_unique<T[]>(count > 0 ? count : 1);
      data_ = storage_.get();
    }
  }
  T* data() { return data_; }
  T& operator[](int64_t i) { return data_[i]; }
  void commit() {
    if (storage_) {
      convert_elements(storage_.get(), scalar_type_of<T>(), out_.data, out_.dtype,
                       static_cast<size_t>(out_.numel()));
    }
  }

 private:
  Tensor& out_;
  T* data_ = nullptr;
  std::unique_ptr<T[]> storage_;
};

// A copy of a tensor's bytes when it overlaps `out`, so that kernels which read inputs
// after writing outputs (matmul, convolution, permutation) see the original values.
class OverlapGuard {
 public:
  OverlapGuard(const Tensor& input, const Tensor& out);
  const void* data() const { return data_; }
  template <typename T>
  const T* as() const { return static_cast<const T*>(data_); }

 private:
  const void* data_;
  std::unique_ptr<std::byte[]> copy_;
};

// ---------------------------------------------------------------------------------------
// Elementwise templates

// Checks that elementwise inputs and out can be iterated as flat arrays: either every
// tensor has the default dim order, or all share one dim order and each input has the
// output's shape or a single element.
Status check_elementwise_layout(const Args& args, std::span<const Tensor* const> inputs,
                                std::span<const std::string_view> names, const Tensor& out);

// out[i] = fn(a[i]) with the input read as CT and the result stored as RT.
template <typename CT, typename RT, typename Fn>
Status unary_map(const Args& args, const Tensor& a, Tensor& out, Fn&& fn) {
  EI_RETURN_IF_ERROR(resize_output(args, out, a.sizes));
  InputView<CT> in(a, &out);
  OutputView<RT> result(out);
  const int64_t n = out.numel();
  for (int64_t i = 0; i < n; ++i) result[i] = fn(in[i]);
  result.commit();
  return Status::Ok();
}

// out = fn(a, b) over the broadcast shape, reading both inputs as CT and storing RT.
template <typename CT, typename RT, typename Fn>
Status binary_map(const Args& args, const Tensor& a, const Tensor& b, Tensor& out, Fn&& fn) {
  EI_ASSIGN_OR_RETURN(std::vector<int64_t> shape, broadcast_shapes(args, a.sizes, b.sizes));
  EI_RETURN_IF_ERROR(resize_output(args, out, shape));
  InputView<CT> in_a(a, &out);
  InputView<CT> in_b(b, &out);
  OutputView<RT> result(out);
  broadcast_for_each<2>(out.sizes, {std::span<const int64_t>(a.sizes), std::span<const int64_t>(b.sizes)},
                        [&](int64_t i, const std::array<int64_t, 2>& idx) {
                          result[i] = fn(in_a[idx[0]], in_b[idx[1]]);
                        });
  result.commit();
  return Status::Ok();
}

// Wrapping integer arithmetic, so that overflow in int64 compute is defined.
inline int64_t wrapping_add(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) + static_cast<uint64_t>(b));
}
inline int64_t wrapping_sub(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) - static_cast<uint64_t>(b));
}
inline int64_t wrapping_mul(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) * static_cast<uint64_t>(b));
}

}  // namespace ei::kernels
