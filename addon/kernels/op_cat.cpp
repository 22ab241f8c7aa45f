// aten::cat.out(Tensor[] tensors, int dim=0, *, Tensor(a!) out) -> Tensor(a!)
// aten::stack.out(Tensor[] tensors, int dim=0, *, Tensor(a!) out) -> Tensor(a!)
// aten::split_copy.Tensor_out(Tensor self, SymInt split_size, int dim=0, *, Tensor(a!)[] out) -> ()
// aten::split_with_sizes_copy.out(Tensor self, SymInt[] split_sizes, int dim=0, *, Tensor(a!)[] out) -> ()
// aten::unbind_copy.int_out(Tensor self, int dim=0, *, Tensor(a!)[] out) -> ()
#include "kernels/kernel_util.h"
#include "kernels/ops.h"

namespace ei::kernels {
namespace {

// Validates the inputs of cat/stack: tensors with a supported dtype, data and the default
// dim order, none of them the out tensor itself.
Result<std::vector<Tensor*>> read_tensor_inputs(const Args& args, const Tensor& out) {
  EI_ASSIGN_OR_RETURN(std::vector<Tensor*> tensors, args.tensor_list(0, "tensors"));
  if (tensors.empty()) return args.fail("tensors", "is empty");
  for (size_t i = 0; i < tensors.size(); ++i) {
    const std::string name = "tensors[" + std::to_string(i) + "]";
    const Tensor& t = *tensors[i];
    if (&t == &out) return args.fail(name, "is the out tensor itself");
    if (!is_supported_dtype(t.dtype)) return unsupported_dtype(args.op(), name, t.dtype);
    const int64_t numel = checked_numel(t.sizes);
    if (numel < 0) return args.fail(name, "has invalid sizes " + shape_to_string(t.sizes));
    if (numel > 0 && (t.data == nullptr || static_cast<size_t>(numel) * element_size(t.dtype) > t.capacity)) {
      return args.fail(name, "has no data for its elements");
    }
    EI_RETURN_IF_ERROR(require_default_dim_order(args, t, name));
    if (!can_cast(t.dtype, out.dtype)) {
      return args.fail(name, "has dtype " + dtype_name(t.dtype) + ", which cannot be cast to out's dtype " +
                                 dtype_name(out.dtype));
    }
  }
  EI_RETURN_IF_ERROR(require_default_dim_order(args, out, "out"));
  return tensors;
}

// Copies `count` elements of `input` starting at `src_offset` into out at `dst_offset`,
// converting the dtype.
void copy_chunk(const void* src, ScalarType src_type, int64_t src_offset, Tensor& out, int64_t dst_offset,
                int64_t count) {
  const auto* s = static_cast<const std::byte*>(src) + src_offset * element_size(src_type);
  auto* d = static_cast<std::byte*>(out.data) + dst_offset * element_size(out.dtype);
  convert_elements(s, src_type, d, out.dtype, static_cast<size_t>(count));
}

int64_t product(std::span<const int64_t> sizes, size_t begin, size_t end) {
  int64_t n = 1;
  for (size_t d = begin; d < end; ++d) n *= sizes[d];
  return n;
}

}  // namespace

EI_DECLARE_KERNEL(cat_out) {
  Args args("aten::cat.out", values);
  EI_RETURN_IF_ERROR(args.check_count(3, 1));
  EI_ASSIGN_OR_RETURN(Tensor * out, args.out_tensor(2, "out"));
  EI_ASSIGN_OR_RETURN(std::vector<Tensor*> all, read_tensor_inputs(args, *out));
  EI_ASSIGN_OR_RETURN(int64_t dim, args.int_value(1, "dim"));
  // As ATen, 1-D tensors of size 0 are skipped whatever the other tensors' shapes.
  std::vector<Tensor*> tensors;
  for (Tensor* t : all) {
    if (!(t->dim() == 1 && t->sizes[0] == 0)) tensors.push_back(t);
  }
  if (tensors.empty()) {
    const std::vector<int64_t> empty{0};
    return resize_output(args, *out, empty);
  }
  const Tensor& ref = *tensors[0];
  const int64_t rank = ref.dim();
  if (rank == 0) return args.fail("tensors[0]", "is a scalar (rank 0), which cannot be concatenated");
  EI_ASSIGN_OR_RETURN(dim, wrap_dim(args, "dim", dim, rank));
  std::vector<int64_t> sizes = ref.sizes;
  sizes[dim] = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = *tensors[i];
    bool compatible = t.dim() == rank;
    for (int64_t d = 0; compatible && d < rank; ++d) compatible = d == dim || t.sizes[d] == ref.sizes[d];
    if (!compatible) {
      return args.fail("tensors", "has shapes " + shape_to_string(ref.sizes) + " and " + shape_to_string(t.sizes) +
                                      ", which differ outside dim " + std::to_string(dim));
    }
    sizes[dim] += t.sizes[dim];
  }
  EI_RETURN_IF_ERROR(resize_output(args, *out, sizes));

  const int64_t outer = product(sizes, 0, dim);
  const int64_t out_row = product(sizes, dim, sizes.size());
  int64_t column = 0;
  for (const Tensor* t : tensors) {
    OverlapGuard source(*t, *out);
    const int64_t row = product(t->sizes, dim, t->sizes.size());
    for (int64_t o = 0; o < outer; ++o) copy_chunk(source.data(), t->dtype, o * row, *out, o * out_row + column, row);
    column += row;
  }
  return Status::Ok();
}

EI_DECLARE_KERNEL(stack_out) {
  Args args("aten::stack.out", values);
  EI_RETURN_IF_ERROR(args.check_count(3, 1));
  EI_ASSIGN_OR_RETURN(Tensor * out, args.out_tensor(2, "out"));
  EI_ASSIGN_OR_RETURN(std::vector<Tensor*> tensors, read_tensor_inputs(args, *out));
  EI_ASSIGN_OR_RETURN(int64_t dim, args.int_value(1, "dim"));
  const Tensor& ref = *tensors[0];
  const int64_t rank = ref.dim();
  if (dim < -(rank + 1) || dim > rank) {
    return args.fail("dim", "is " + std::to_string(dim) + ", out of range for stacking tensors of rank " +
                                std::to_string(rank));
  }
  if (dim < 0) dim += rank + 1;
  for (const Tensor* t : tensors) {
    if (t->sizes != ref.sizes) {
      return args.fail("tensors", "has shapes " + shape_to_string(ref.sizes) + " and " + shape_to_string(t->sizes) +
                                      ", expected equal shapes");
    }
  }
  std::vector<int64_t> sizes = ref.sizes;
  sizes.insert(sizes.begin() + dim, static_cast<int64_t>(tensors.size()));
  EI_RETURN_IF_ERROR(resize_output(args, *out, sizes));

  const int64_t count = static_cast<int64_t>(tensors.size());
  const int64_t outer = product(ref.sizes, 0, dim);
  const int64_t inner = product(ref.sizes, dim, ref.sizes.size());
  for (int64_t k = 0; k < count; ++k) {
    OverlapGuard source(*tensors[k], *out);
    for (int64_t o = 0; o < outer; ++o) {
      copy_chunk(source.data(), tensors[k]->dtype, o * inner, *out, (o * count + k) * inner, inner);
    }
  }
  return Status::Ok();
}

namespace {

// Writes consecutive pieces of self along dim into the out tensors; a piece of size
// lengths[i] goes to outs[i], with the dim dropped when drop_dim is set.
Status split_into(const Args& args, const Tensor& self, int64_t dim, std::span<const int64_t> lengths,
                  const std::vector<Tensor*>& outs, bool drop_dim) {
  if (outs.size() != lengths.size()) {
    return args.fail("out", "has " + std::to_string(outs.size()) + " tensors, expected " + std::to_string(lengths.size()));
  }
  const std::vector<int64_t> in_strides = strides_for(self.sizes, self.dim_order);
  int64_t start = 0;
  for (size_t i = 0; i < outs.size(); ++i) {
    Tensor& out = *outs[i];
    const std::string name = "out[" + std::to_string(i) + "]";
    if (out.dtype != self.dtype) {
      return args.fail(name, "has dtype " + dtype_name(out.dtype) + ", expected self's dtype " + dtype_name(self.dtype));
    }
    if (out.is_constant) return args.fail(name, "is constant data and cannot be written");
    std::vector<int64_t> view_sizes = self.sizes;
    view_sizes[dim] = lengths[i];
    std::vector<int64_t> out_sizes = view_sizes;
    std::vector<int64_t> view_strides = in_strides;
    if (drop_dim) {
      out_sizes.erase(out_sizes.begin() + dim);
      view_sizes.erase(view_sizes.begin() + dim);
      view_strides.erase(view_strides.begin() + dim);
    }
    EI_RETURN_IF_ERROR(resize_output(args, out, out_sizes, name));
    OverlapGuard source(self, out);
    strided_copy(source.data(), view_strides, start * in_strides[dim], out.data,
                 strides_for(out.sizes, out.dim_order), view_sizes, element_size(self.dtype));
    start += lengths[i];
  }
  return Status::Ok();
}

}  // namespace

EI_DECLARE_KERNEL(split_with_sizes_copy_out) {
  Args args("aten::split_with_sizes_copy.out", values);
  EI_RETURN_IF_ERROR(args.check_count(4, 0));
  EI_ASSIGN_OR_RETURN(Tensor * self, args.tensor(0, "self"));
  EI_ASSIGN_OR_RETURN(std::vector<int64_t> split_sizes, args.int_list(1, "split_sizes"));
  EI_ASSIGN_OR_RETURN(int64_t dim, args.int_value(2, "dim"));
  EI_ASSIGN_OR_RETURN(std::vector<Tensor*> outs, args.tensor_list(3, "out"));
  if (self->dim() == 0) return args.fail("self", "is a scalar (rank 0), which cannot be split");
  EI_ASSIGN_OR_RETURN(dim, wrap_dim(args, "dim", dim, self->dim()));
  int64_t total = 0;
  for (int64_t length : split_sizes) {
    if (length < 0 || length > self->sizes[dim]) return args.fail("split_sizes", "has invalid size " + std::to_string(length));
    total += length;
  }
  if (total != self->sizes[dim]) {
    return args.fail("split_sizes", shape_to_string(split_sizes) + " does not sum to " +
                                        std::to_string(self->sizes[dim]) + ", the size of dim " + std::to_string(dim));
  }
  return split_into(args, *self, dim, split_sizes, outs, false);
}

EI_DECLARE_KERNEL(split_copy_tensor_out) {
  Args args("aten::split_copy.Tensor_out", values);
  EI_RETURN_IF_ERROR(args.check_count(4, 0));
  EI_ASSIGN_OR_RETURN(Tensor * self, args.tensor(0, "self"));
  EI_ASSIGN_OR_RETURN(int64_t split_size, args.int_value(1, "split_size"));
  EI_ASSIGN_OR_RETURN(int64_t dim, args.int_value(2, "dim"));
  EI_ASSIGN_OR_RETURN(std::vector<Tensor*> outs, args.tensor_list(3, "out"));
  if (self->dim() == 0) return args.fail("self", "is a scalar (rank 0), which cannot be split");
  EI_ASSIGN_OR_RETURN(dim, wrap_dim(args, "dim", dim, self->dim()));
  const int64_t size = self->sizes[dim];
  if (split_size < 0 || (split_size == 0 && size != 0)) {
    return args.fail("split_size", "is " + std::to_string(split_size) + ", expected a positive value");
  }
  // Pieces of split_size, the last one shorter; an empty dim gives one empty piece.
  std::vector<int64_t> lengths;
  if (size == 0) {
    lengths.push_back(0);
  } else {
    // The piece count is checked first, because sizes of an empty tensor may be huge.
    const int64_t pieces = (size - 1) / split_size + 1;
    if (pieces != static_cast<int64_t>(outs.size())) {
      return args.fail("out", "has " + std::to_string(outs.size()) + " tensors, expected " + std::to_string(pieces));
    }
    for (int64_t start = 0; start < size; start += split_size) lengths.push_back(std::min(split_size, size - start));
  }
  return split_into(args, *self, dim, lengths, outs, false);
}

EI_DECLARE_KERNEL(unbind_copy_int_out) {
  Args args("aten::unbind_copy.int_out", values);
  EI_RETURN_IF_ERROR(args.check_count(3, 0));
  EI_ASSIGN_OR_RETURN(Tensor * self, args.tensor(0, "self"));
  EI_ASSIGN_OR_RETURN(int64_t dim, args.int_value(1, "dim"));
  EI_ASSIGN_OR_RETURN(std::vector<Tensor*> outs, args.tensor_list(2, "out"));
  if (self->dim() == 0) return args.fail("self", "is a scalar (rank 0), which cannot be unbound");
  EI_ASSIGN_OR_RETURN(dim, wrap_dim(args, "dim", dim, self->dim()));
  if (self->sizes[dim] != static_cast<int64_t>(outs.size())) {
    return args.fail("out", "has " + std::to_string(outs.size()) + " tensors, expected " + std::to_string(self->sizes[dim]));
  }
  const std::vector<int64_t> lengths(outs.size(), 1);
  return split_into(args, *self, dim, lengths, outs, true);
}

}  // namespace ei::kernels
