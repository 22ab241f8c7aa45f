// Copies between a tensor's own layout (its dim order) and contiguous row-major bytes over
// its sizes, the layout that the API and .npy files use.
#pragma once

#include "runtime/tensor.h"

namespace ei {

// Copies tensor.numel() elements from row-major `source` into the tensor's memory.
void copy_from_contiguous(Tensor& tensor, const void* source);
// Copies the tensor's elements into row-major `destination`.
void copy_to_contiguous(const Tensor& tensor, void* destination);

}  // namespace ei
