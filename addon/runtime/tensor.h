// Tensors of the runtime: a dtype, sizes, a dim order and a pointer to memory that is
// either constant data in the mapped file, planned arena memory, or owned storage.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "runtime/status.h"

namespace ei {

// Element types with the numeric values of the .pte schema (the c10::ScalarType numbering).
enum class ScalarType : int8_t {
  kByte = 0,
  kChar = 1,
  kShort = 2,
  kInt = 3,
  kLong = 4,
  kHalf = 5,
  kFloat = 6,
  kDouble = 7,
  kBool = 11,
  kQInt8 = 12,
  kQUInt8 = 13,
  kQInt32 = 14,
  kBFloat16 = 15,
  kQUInt4x2 = 16,
  kQUInt2x4 = 17,
  kBits16 = 22,
  kFloat8e5m2 = 23,
  kFloat8e4m3fn = 24,
  kFloat8e5m2fnuz = 25,
  kFloat8e4m3fnuz = 26,
  kUInt16 = 27,
  kUInt32 = 28,
  kUInt64 = 29,
};

// Bytes per element, or 0 for a value that is not a known scalar type.
size_t element_size(ScalarType type);
// The NumPy-style name ("float32", "int64", "bool", ...), or "scalar_type(N)" when unknown.
std::string dtype_name(ScalarType type);
// True for the types that the runtime can compute with and the API can pass in and out:
// uint8, int8, int16, int32, int64, float32, float64, bool.
bool is_supported_dtype(ScalarType type);

enum class ShapeDynamism : uint8_t { kStatic = 0, kDynamicBound = 1, kDynamicUnbound = 2 };

// Largest rank the runtime accepts, as upstream ExecuTorch's kTensorDimensionLimit (16).
constexpr size_t kMaxRank = 16;

struct Tensor {
  ScalarType dtype = ScalarType::kFloat;
  std::vector<int64_t> sizes;
  std::vector<uint8_t> dim_order;   // outermost dimension first; identity for contiguous
  std::vector<int64_t> strides;     // in elements, derived from sizes and dim_order
  void* data = nullptr;
  size_t capacity = 0;              // bytes usable at `data`
  ShapeDynamism dynamism = ShapeDynamism::kStatic;
  std::vector<int64_t> upper_bound; // the planned sizes; resizes of bounded tensors stay within
  bool is_constant = false;         // points into read-only file data
  std::shared_ptr<std::byte[]> owned;  // storage of unbound tensors and of resized outputs

  int64_t dim() const { return static_cast<int64_t>(sizes.size()); }
  int64_t numel() const;
  size_t nbytes() const { return static_cast<size_t>(numel()) * element_size(dtype); }
  bool has_default_dim_order() const;

  template <typename T>
  T* data_as() { return static_cast<T*>(data); }
  template <typename T>
  const T* data_as() const { return static_cast<const T*>(data); }

  // Sets new sizes keeping rank and dim order. Static tensors accept only their own shape,
  // bounded tensors any shape within the bound, unbounded tensors any shape (storage grows).
  Status resize(std::span<const int64_t> new_sizes);
  // Recomputes `strides` from `sizes` and `dim_order`.
  void update_strides();
  // "[2, 3, 4]"
  std::string shape_string() const;
};

// Element count of a shape, or -1 when a size is negative or the count overflows int64.
int64_t checked_numel(std::span<const int64_t> sizes);

// Allocates zeroed storage aligned to 64 bytes.
std::shared_ptr<std::byte[]> allocate_aligned(size_t bytes);

}  // namespace ei
