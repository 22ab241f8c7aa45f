// aten::embedding.out(Tensor weight, Tensor indices, SymInt padding_idx=-1, bool scale_grad_by_freq=False, bool sparse=False, *, Tensor(a!) out) -> Tensor(a!)
// aten::index.Tensor_out(Tensor self, Tensor?[] indices, *, Tensor(a!) out) -> Tensor(a!)
// aten::index_select.out(Tensor self, int dim, Tensor index, *, Tensor(a!) out) -> Tensor(a!)
// aten::gather.out(Tensor self, int dim, Tensor index, *, bool sparse_grad=False, Tensor(a!) out) -> Tensor(a!)
//
// Index values are validated before any element is copied: an out-of-range index fails the
// kernel instead of reading outside self.
#include <cstring>

#include "kernels/kernel_util.h"
#include "kernels/ops.h"

namespace ei::kernels {
namespace {

Status check_index_dtype(const Args& args, const Tensor& index, std::string_view name) {
  if (index.dtype == ScalarType::kLong || index.dtype == ScalarType::kInt) return Status::Ok();
  return args.fail(name, "has dtype " + dtype_name(index.dtype) + ", expected int64 or int32");
}

// Reads index values as int64, wrapping negative ones and rejecting values outside [-size, size).
Result<std::vector<int64_t>> read_indices(const Args& args, const Tensor& index, std::string_view name, int64_t size) {
  InputView<int64_t> raw(index);
  std::vector<int64_t> result(static_cast<size_t>(index.numel()));
  for (size_t i = 0; i < result.size(); ++i) {
    int64_t v = raw[static_cast<int64_t>(i)];
    if (v < -size || v >= size) {
      return args.fail(name, "contains index " + std::to_string(v) + ", out of range for size " + std::to_string(size));
    }
    result[i] = v < 0 ? v + size : v;
  }
  return result;
}

}  // namespace

EI_DECLARE_KERNEL(embedding_out) {
  Args args("aten::embedding.out", values);
  EI_RETURN_IF_ERROR(args.check_count(6, 1));
  EI_ASSIGN_OR_RETURN(Tensor * weight, args.tensor(0, "weight"));
  EI_ASSIGN_OR_RETURN(Tensor * indices, args.tensor(1, "indices"));
  EI_ASSIGN_OR_RETURN(Tensor * out, args.out_tensor(5, "out"));
  if (weight->dim() != 2) return args.fail("weight", "has rank " + std::to_string(weight->dim()) + ", expected 2");
  EI_RETURN_IF_ERROR(check_index_dtype(args, *indices, "indices"));
  if (out->dtype != weight->dtype) {
    return args.fail("out", "has dtype " + dtype_name(out->dtype) + ", expected the weight's dtype " + dtype_name(weight->dtype));
  }
  EI_RETURN_IF_ERROR(require_default_dim_order(args, *weight, "weight"));
  EI_RETURN_IF_ERROR(require_default_dim_order(args, *indices, "indices"));
  EI_RETURN_IF_ERROR(require_default_dim_order(args, *out, "out"));
  const int64_t rows = weight->sizes[0];
  const int64_t width = weight->sizes[1];
  // Unlike Python indexing, embedding rejects negative indices.
  InputView<int64_t> raw(*indices);
  const int64_t count = indices->numel();
  for (int64_t i = 0; i < count; ++i) {
    if (raw[i] < 0 || raw[i] >= rows) {
      return args.fail("indices", "contains index " + std::to_string(raw[i]) + ", out of range for " +
                                      std::to_string(rows) + " embeddings");
    }
  }
  std::vector<int64_t> sizes = indices->sizes;
  sizes.push_back(width);
  std::vector<int64_t> index_copy(raw.data(), raw.data() + count);  // out may overlap indices
  EI_RETURN_IF_ERROR(resize_output(args, *out, sizes));
  OverlapGuard table(*weight, *out);
  const size_t row_bytes = static_cast<size_t>(width) * element_size(weight->dtype);
  auto* y = static_cast<std::byte*>(out->data);
  for (int64_t i = 0; i < count; ++i) {
    std::memcpy(y + i * row_bytes, static_cast<const std::byte*>(table.data()) + index_copy[i] * row_bytes, row_bytes);
  }
  return Status::Ok();
}

EI_DECLARE_KERNEL(index_select_out) {
  Args args("aten::index_select.out", values);
  EI_RETURN_IF_ERROR(args.check_count(4, 1));
  EI_ASSIGN_OR_RETURN(Tensor * self, args.tensor(0, "self"));
  EI_ASSIGN_OR_RETURN(int64_t dim, args.int_value(1, "dim"));
  EI_ASSIGN_OR_RETURN(Tensor * index, args.tensor(2, "index"));
  EI_ASSIGN_OR_RETURN(Tensor * out, args.out_tensor(3, "out"));
  EI_RETURN_IF_ERROR(check_index_dtype(args, *index, "index"));
  if (index->dim() > 1) return args.fail("index", "has rank " + std::to_string(index->dim()) + ", expected 0 or 1");
  if (out->dtype != self->dtype) {
    return args.fail("out", "has dtype " + dtype_name(out->dtype) + ", expected self's dtype " + dtype_name(self->dtype));
  }
  EI_RETURN_IF_ERROR(require_default_dim_order(args, *self, "self"));
  EI_RETURN_IF_ERROR(require_default_dim_order(args, *out, "out"));
  const int64_t rank = self->dim();
  EI_ASSIGN_OR_RETURN(dim, wrap_dim(args, "dim", dim, rank));
  const int64_t size = rank == 0 ? 1 : self->sizes[dim];
  EI_ASSIGN_OR_RETURN(std::vector<int64_t> picks, read_indices(args, *index, "index", size));
  std::vector<int64_t> sizes = self->sizes;
  if (rank > 0) sizes[dim] = static_cast<int64_t>(picks.size());
  const std::vector<int64_t> self_sizes = self->sizes;
  EI_RETURN_IF_ERROR(resize_output(args, *out, sizes));
  if (out->numel() == 0) return Status::Ok();
  OverlapGuard source(*self, *out);
  const int64_t outer = rank == 0 ? 1 : shape_numel(std::span(self_sizes).subspan(0, dim));
  const int64_t inner = rank == 0 ? 1 : shape_numel(std::span(self_sizes).subspan(dim + 1));
  const size_t bytes = element_size(self->dtype);
  const size_t chunk = static_cast<size_t>(inner) * bytes;
  const auto* x = static_cast<const std::byte*>(source.data());
  auto* y = static_cast<std::byte*>(out->data);
  const int64_t count = static_cast<int64_t>(picks.size());
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t k = 0; k < count; ++k) {
      std::memcpy(y + ((o * count + k) * inner) * bytes, x + ((o * size + picks[k]) * inner) * bytes, chunk);
    }
  }
  return Status::Ok();
}

EI_DECLARE_KERNEL(gather_out) {
  Args args("aten::gather.out", values);
  EI_RETURN_IF_ERROR(args.check_count(5, 1));
  EI_ASSIGN_OR_RETURN(Tensor * self, args.tensor(0, "self"));
  EI_ASSIGN_OR_RETURN(int64_t dim, args.int_value(1, "dim"));
  EI_ASSIGN_OR_RETURN(Tensor * index, args.tensor(2, "index"));
  EI_ASSIGN_OR_RETURN(Tensor * out, args.out_tensor(4, "out"));
  if (index->dtype != ScalarType::kLong) {
    return args.fail("index", "has dtype " + dtype_name(index->dtype) + ", expected int64");
  }
  if (out->dtype != self->dtype) {
    return args.fail("out", "has dtype " + dtype_name(out->dtype) + ", expected self's dtype " + dtype_name(self->dtype));
  }
  const int64_t rank = self->dim();
  if (index->numel() > 0 && index->dim() != std::max<int64_t>(rank, 1) && !(rank == 0 && index->dim() == 0)) {
    return args.fail("index", "has rank " + std::to_string(index->dim()) + ", expected self's rank " + std::to_string(rank));
  }
  EI_RETURN_IF_ERROR(require_default_dim_order(args, *self, "self"));
  EI_RETURN_IF_ERROR(require_default_dim_order(args, *index, "index"));
  EI_RETURN_IF_ERROR(require_default_dim_order(args, *out, "out"));
  EI_ASSIGN_OR_RETURN(dim, wrap_dim(args, "dim", dim, rank));
  const std::vector<int64_t> self_sizes = rank == 0 ? std::vector<int64_t>{1} : self->sizes;
  const std::vector<int64_t> index_sizes = index->sizes;
  if (index->numel() > 0 && rank > 0) {
    for (int64_t d = 0; d < rank; ++d) {
      if (d != dim && index_sizes[d] > self_sizes[d]) {
        return args.fail("index", "of shape " + shape_to_string(index_sizes) + " is larger than self of shape " +
                                      shape_to_string(self_sizes) + " outside dim " + std::to_string(dim));
      }
    }
  }
  EI_ASSIGN_OR_RETURN(std::vector<int64_t> picks, read_indices(args, *index, "index", self_sizes[dim]));
  EI_RETURN_IF_ERROR(resize_output(args, *out, index_sizes));
  if (out->numel() == 0) return Status::Ok();
  OverlapGuard source(*self, *out);
  const std::vector<int64_t> self_strides = contiguous_strides(self_sizes);
  const size_t bytes = element_size(self->dtype);
  const auto* x = static_cast<const std::byte*>(source.data());
  auto* y = static_cast<std::byte*>(out->data);
  const std::vector<int64_t> walk_sizes = index_sizes.empty() ? std::vector<int64_t>{1} : index_sizes;
  std::vector<int64_t> counter(walk_sizes.size(), 0);
  const int64_t count = out->numel();
  for (int64_t i = 0; i < count; ++i) {
    int64_t offset = 0;
    for (size_t d = 0; d < walk_sizes.size(); ++d) {
      offset += (static_cast<int64_t>(d) == dim ? picks[i] : counter[d]) * self_strides[d];
    }
    std::memcpy(y + i * bytes, x + offset * bytes, bytes);
    for (size_t d = walk_sizes.size(); d-- > 0;) {
      if (++counter[d] < walk_sizes[d]) break;
      counter[d] = 0;
    }
  }
  return Status::Ok();
}

// Advanced indexing: the index tensors broadcast together, and bool masks count as their
// nonzero coordinates. The broadcast shape replaces the indexed dims. It sits at the first
// indexed dim when the indexed dims are adjacent, else at the front.
EI_DECLARE_KERNEL(index_tensor_out) {
  Args args("aten::index.Tensor_out", values);
  EI_RETURN_IF_ERROR(args.check_count(3, 1));
  EI_ASSIGN_OR_RETURN(Tensor * self, args.tensor(0, "self"));
  EI_ASSIGN_OR_RETURN(std::vector<Tensor*> given, args.optional_tensor_list(1, "indices"));
  EI_ASSIGN_OR_RETURN(Tensor * out, args.out_tensor(2, "out"));
  if (out->dtype != self->dtype) {
    return args.fail("out", "has dtype " + dtype_name(out->dtype) + ", expected self's dtype " + dtype_name(self->dtype));
  }
  EI_RETURN_IF_ERROR(require_default_dim_order(args, *self, "self"));
  EI_RETURN_IF_ERROR(require_default_dim_order(args, *out, "out"));
  const int64_t rank = self->dim();

  // Expand masks: a bool/uint8 mask over k dims becomes k 1-d index tensors.
  struct IndexArray {
    std::vector<int64_t> sizes;
    std::vector<int64_t> values;  // wrapped into [0, size of the indexed dim)
  };
  std::vector<std::optional<IndexArray>> per_dim;
  for (size_t i = 0; i < given.size(); ++i) {
    const std::string name = "indices[" + std::to_string(i) + "]";
    const Tensor* index = given[i];
    if (index == nullptr) {
      per_dim.emplace_back();
      continue;
    }
    const int64_t first_dim = static_cast<int64_t>(per_dim.size());
    if (index->dtype == ScalarType::kBool || index->dtype == ScalarType::kByte) {
      const int64_t mask_rank = index->dim();
      if (first_dim + mask_rank > rank) return args.fail(name, "indexes more dims than self has");
      for (int64_t d = 0; d < mask_rank; ++d) {
        if (index->sizes[d] != self->sizes[first_dim + d]) {
          return args.fail(name, "of shape " + shape_to_string(index->sizes) + " does not match self's shape " +
                                     shape_to_string(self->sizes) + " at dim " + std::to_string(first_dim + d));
        }
      }
      EI_RETURN_IF_ERROR(require_default_dim_order(args, *index, name));
      InputView<bool> mask(*index);
      std::vector<std::vector<int64_t>> coordinates(static_cast<size_t>(mask_rank));
      const std::vector<int64_t> strides = contiguous_strides(index->sizes);
      for (int64_t e = 0; e < index->numel(); ++e) {
        if (!mask[e]) continue;
        for (int64_t d = 0; d < mask_rank; ++d) coordinates[d].push_back((e / strides[d]) % index->sizes[d]);
      }
      for (int64_t d = 0; d < mask_rank; ++d) {
        const int64_t hits = static_cast<int64_t>(coordinates[d].size());
        per_dim.emplace_back(IndexArray{{hits}, std::move(coordinates[d])});
      }
      continue;
    }
    EI_RETURN_IF_ERROR(check_index_dtype(args, *index, name));
    EI_RETURN_IF_ERROR(require_default_dim_order(args, *index, name));
    if (first_dim >= rank) return args.fail(name, "indexes more dims than self has");
    EI_ASSIGN_OR_RETURN(std::vector<int64_t> wrapped, read_indices(args, *index, name, self->sizes[first_dim]));
    per_dim.emplace_back(IndexArray{index->sizes, std::move(wrapped)});
  }
  if (static_cast<int64_t>(per_dim.size()) > rank) return args.fail("indices", "has more entries than self has dims");
  per_dim.resize(static_cast<size_t>(rank));

  std::vector<int64_t> indexed_dims;
  std::vector<int64_t> broadcast;
  for (int64_t d = 0; d < rank; ++d) {
    if (!per_dim[d]) continue;
    indexed_dims.push_back(d);
    EI_ASSIGN_OR_RETURN(broadcast, broadcast_shapes(args, broadcast, per_dim[d]->sizes));
  }
  if (indexed_dims.empty()) return args.fail("indices", "has no index tensor");
  const bool adjacent = indexed_dims.back() - indexed_dims.front() + 1 == static_cast<int64_t>(indexed_dims.size());
  const int64_t insert_at = adjacent ? indexed_dims.front() : 0;

  // Output shape: the plain dims of self in order, with the broadcast shape at insert_at.
  std::vector<int64_t> plain_dims;
  for (int64_t d = 0; d < rank; ++d) {
    if (!per_dim[d]) plain_dims.push_back(d);
  }
  std::vector<int64_t> sizes;
  size_t plain_before = 0;
  for (int64_t d : plain_dims) {
    if (d < insert_at) ++plain_before;
  }
  for (size_t k = 0; k < plain_before; ++k) sizes.push_back(self->sizes[plain_dims[k]]);
  sizes.insert(sizes.end(), broadcast.begin(), broadcast.end());
  for (size_t k = plain_before; k < plain_dims.size(); ++k) sizes.push_back(self->sizes[plain_dims[k]]);
  const std::vector<int64_t> self_sizes = self->sizes;
  EI_RETURN_IF_ERROR(resize_output(args, *out, sizes));
  if (out->numel() == 0) return Status::Ok();

  // For each broadcast position, the self offset contributed by the indexed dims.
  const std::vector<int64_t> self_strides = contiguous_strides(self_sizes);
  const int64_t positions = shape_numel(broadcast);
  std::vector<int64_t> indexed_offset(static_cast<size_t>(positions), 0);
  for (int64_t d : indexed_dims) {
    const IndexArray& array = *per_dim[d];
    broadcast_for_each<1>(broadcast, {std::span<const int64_t>(array.sizes)},
                          [&](int64_t p, const std::array<int64_t, 1>& idx) {
                            indexed_offset[p] += array.values[idx[0]] * self_strides[d];
                          });
  }
  // Walk the output: (plain dims before, broadcast position, plain dims after).
  OverlapGuard source(*self, *out);
  const size_t bytes = element_size(self->dtype);
  const auto* x = static_cast<const std::byte*>(source.data());
  auto* y = static_cast<std::byte*>(out->data);
  std::vector<int64_t> before_sizes, before_strides, after_sizes, after_strides;
  for (size_t k = 0; k < plain_dims.size(); ++k) {
    (k < plain_before ? before_sizes : after_sizes).push_back(self_sizes[plain_dims[k]]);
    (k < plain_before ? before_strides : after_strides).push_back(self_strides[plain_dims[k]]);
  }
  const int64_t after_count = shape_numel(after_sizes);
  std::vector<int64_t> after_offsets;
  {
    std::vector<int64_t> counter(after_sizes.size(), 0);
    for (int64_t a = 0; a < after_count; ++a) {
      int64_t offset = 0;
      for (size_t d = 0; d < after_sizes.size(); ++d) offset += counter[d] * after_strides[d];
      after_offsets.push_back(offset);
      for (size_t d = after_sizes.size(); d-- > 0;) {
        if (++counter[d] < after_sizes[d]) break;
        counter[d] = 0;
      }
    }
  }
  const int64_t before_count = shape_numel(before_sizes);
  std::vector<int64_t> counter(before_sizes.size(), 0);
  int64_t written = 0;
  for (int64_t b = 0; b < before_count; ++b) {
    int64_t before_offset = 0;
    for (size_t d = 0; d < before_sizes.size(); ++d) before_offset += counter[d] * before_strides[d];
    for (int64_t p = 0; p < positions; ++p) {
      const int64_t base = before_offset + indexed_offset[p];
      for (int64_t a = 0; a < after_count; ++a) {
        std::memcpy(y + written * bytes, x + (base + after_offsets[a]) * bytes, bytes);
        ++written;
      }
    }
    for (size_t d = before_sizes.size(); d-- > 0;) {
      if (++counter[d] < before_sizes[d]) break;
      counter[d] = 0;
    }
  }
  return Status::Ok();
}

}  // namespace ei::kernels
