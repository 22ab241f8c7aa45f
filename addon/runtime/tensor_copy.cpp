#include "runtime/tensor_copy.h"

#include <cstring>
#include <vector>

namespace ei {

namespace {

// Walks the elements in row-major order and calls visit(row_major_index, strided_index).
template <typename Visit>
void for_each_element(const Tensor& tensor, Visit visit) {
  int64_t count = tensor.numel();
  size_t rank = tensor.sizes.size();
  std::vector<int64_t> position(rank, 0);
  int64_t strided = 0;
  for (int64_t linear = 0; linear < count; ++linear) {
    visit(linear, strided);
    for (size_t d = rank; d-- > 0;) {
      ++position[d];
      strided += tensor.strides[d];
      if (position[d] < tensor.sizes[d]) break;
      strided -= tensor.strides[d] * position[d];
      position[d] = 0;
    }
  }
}

}  // namespace

void copy_from_contiguous(Tensor& tensor, const void* source) {
  size_t element = element_size(tensor.dtype);
  if (tensor.has_default_dim_order()) {
    if (tensor.nbytes() > 0) std::memmove(tensor.data, source, tensor.nbytes());
    return;
  }
  auto* out = static_cast<uint8_t*>(tensor.data);
  const auto* in = static_cast<const uint8_t*>(source);
  for_each_element(tensor, [&](int64_t linear, int64_t strided) {
    std::memcpy(out + strided * element, in + linear * element, element);
  });
}

void copy_to_contiguous(const Tensor& tensor, void* destination) {
  size_t element = element_size(tensor.dtype);
  if (tensor.has_default_dim_order()) {
    if (tensor.nbytes() > 0) std::memmove(destination, tensor.data, tensor.nbytes());
    return;
  }
  auto* out = static_cast<uint8_t*>(destination);
  const auto* in = static_cast<const uint8_t*>(tensor.data);
  for_each_element(tensor, [&](int64_t linear, int64_t strided) {
    std::memcpy(out + linear * element, in + strided * element, element);
  });
}

}  // namespace ei
