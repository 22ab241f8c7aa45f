#include "runtime/tensor.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <sstream>

namespace ei {

size_t element_size(ScalarType type) {
  switch (type) {
    case ScalarType::kByte:
    case ScalarType::kChar:
    case ScalarType::kBool:
    case ScalarType::kQInt8:
    case ScalarType::kQUInt8:
    case ScalarType::kQUInt4x2:
    case ScalarType::kQUInt2x4:
    case ScalarType::kFloat8e5m2:
    case ScalarType::kFloat8e4m3fn:
    case ScalarType::kFloat8e5m2fnuz:
    case ScalarType::kFloat8e4m3fnuz:
      return 1;
    case ScalarType::kShort:
    case ScalarType::kHalf:
    case ScalarType::kBFloat16:
    case ScalarType::kBits16:
    case ScalarType::kUInt16:
      return 2;
    case ScalarType::kInt:
    case ScalarType::kFloat:
    case ScalarType::kQInt32:
    case ScalarType::kUInt32:
      return 4;
    case ScalarType::kLong:
    case ScalarType::kDouble:
    case ScalarType::kUInt64:
      return 8;
  }
  return 0;
}

std::string dtype_name(ScalarType type) {
  switch (type) {
    case ScalarType::kByte: return "uint8";
    case ScalarType::kChar: return "int8";
    case ScalarType::kShort: return "int16";
    case ScalarType::kInt: return "int32";
    case ScalarType::kLong: return "int64";
    case ScalarType::kHalf: return "float16";
    case ScalarType::kFloat: return "float32";
    case ScalarType::kDouble: return "float64";
    case ScalarType::kBool: return "bool";
    case ScalarType::kQInt8: return "qint8";
    case ScalarType::kQUInt8: return "quint8";
    case ScalarType::kQInt32: return "qint32";
    case ScalarType::kBFloat16: return "bfloat16";
    case ScalarType::kQUInt4x2: return "quint4x2";
    case ScalarType::kQUInt2x4: return "quint2x4";
    case ScalarType::kBits16: return "bits16";
    case ScalarType::kFloat8e5m2: return "float8_e5m2";
    case ScalarType::kFloat8e4m3fn: return "float8_e4m3fn";
    case ScalarType::kFloat8e5m2fnuz: return "float8_e5m2fnuz";
    case ScalarType::kFloat8e4m3fnuz: return "float8_e4m3fnuz";
    case ScalarType::kUInt16: return "uint16";
    case ScalarType::kUInt32: return "uint32";
    case ScalarType::kUInt64: return "uint64";
  }
  return "scalar_type(" + std::to_string(static_cast<int>(type)) + ")";
}

bool is_supported_dtype(ScalarType type) {
  switch (type) {
    case ScalarType::kByte:
    case ScalarType::kChar:
    case ScalarType::kShort:
    case ScalarType::kInt:
    case ScalarType::kLong:
    case ScalarType::kFloat:
    case ScalarType::kDouble:
    case ScalarType::kBool:
      return true;
    default:
      return false;
  }
}

int64_t checked_numel(std::span<const int64_t> sizes) {
  int64_t count = 1;
  for (int64_t size : sizes) {
    if (size < 0) return -1;
    if (size != 0 && count > std::numeric_limits<int64_t>::max() / size) return -1;
    count *= size;
  }
  return count;
}

int64_t Tensor::numel() const {
  int64_t count = 1;
  for (int64_t size : sizes) count *= size;
  return count;
}

bool Tensor::has_default_dim_order() const {
  for (size_t i = 0; i < dim_order.size(); ++i) {
    if (dim_order[i] != i) return false;
  }
  return true;
}

void Tensor::update_strides() {
  strides.assign(sizes.size(), 1);
  // A size-0 dimension counts as 1 here, so the product of the other sizes can exceed int64
  // although the tensor is empty; unsigned arithmetic keeps that defined. No stride of an
  // empty tensor addresses memory, and for any other tensor the product fits (numel does).
  uint64_t stride = 1;
  // The last entry of dim_order is the innermost dimension.
  for (size_t i = dim_order.size(); i-- > 0;) {
    uint8_t dim = dim_order[i];
    strides[dim] = static_cast<int64_t>(stride);
    stride *= static_cast<uint64_t>(sizes[dim] == 0 ? 1 : sizes[dim]);
  }
}

std::string Tensor::shape_string() const {
  std::ostringstream out;
  out << "[";
  for (size_t i = 0; i < sizes.size(); ++i) out << (i ? ", " : "") << sizes[i];
  out << "]";
  return out.str();
}

Status Tensor::resize(std::span<const int64_t> new_sizes) {
  if (new_sizes.size() != sizes.size()) {
    return error(ErrorCode::kKernelFailed, "cannot resize a tensor of rank ", sizes.size(), " to rank ",
                 new_sizes.size());
  }
  int64_t count = checked_numel(new_sizes);
  if (count < 0) return error(ErrorCode::kKernelFailed, "invalid tensor sizes in resize");
  size_t bytes = static_cast<size_t>(count) * element_size(dtype);
  bool same = std::equal(new_sizes.begin(), new_sizes.end(), sizes.begin());
  // An unbound tensor may have no storage yet (never written, or released by a FreeCall).
  bool needs_storage = dynamism == ShapeDynamism::kDynamicUnbound && (data == nullptr || capacity < bytes);
  if (same && !needs_storage) return Status::Ok();

  switch (dynamism) {
    case ShapeDynamism::kStatic: {
      Tensor wanted;
      wanted.sizes.assign(new_sizes.begin(), new_sizes.end());
      return error(ErrorCode::kKernelFailed, "cannot resize a static tensor of shape ", shape_string(), " to ",
                   wanted.shape_string());
    }
    case ShapeDynamism::kDynamicBound:
      for (size_t i = 0; i < new_sizes.size(); ++i) {
        if (i < upper_bound.size() && new_sizes[i] > upper_bound[i]) {
          return error(ErrorCode::kKernelFailed, "size ", new_sizes[i], " of dimension ", i,
                       " exceeds the upper bound ", upper_bound[i], " of a bounded dynamic tensor");
        }
      }
      if (bytes > capacity) {
        return error(ErrorCode::kKernelFailed, "resized tensor needs ", bytes, " bytes but only ", capacity,
                     " are planned");
      }
      break;
    case ShapeDynamism::kDynamicUnbound:
      if (bytes > capacity || data == nullptr) {
        auto storage = allocate_aligned(bytes == 0 ? 1 : bytes);
        if (!storage) return error(ErrorCode::kOutOfMemory, "cannot allocate ", bytes, " bytes for a tensor");
        owned = std::move(storage);
        data = owned.get();
        capacity = bytes;
      }
      break;
  }
  sizes.assign(new_sizes.begin(), new_sizes.end());
  update_strides();
  return Status::Ok();
}

std::shared_ptr<std::byte[]> allocate_aligned(size_t bytes) {
  constexpr size_t kAlignment = 64;
  size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
  if (rounded < bytes) return nullptr;
  void* memory = std::aligned_alloc(kAlignment, rounded == 0 ? kAlignment : rounded);
  if (memory == nullptr) return nullptr;
  std::memset(memory, 0, rounded == 0 ? kAlignment : rounded);
  return std::shared_ptr<std::byte[]>(static_cast<std::byte*>(memory), [](std::byte* pointer) { std::free(pointer); });
}

}  // namespace ei
