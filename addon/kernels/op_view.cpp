// aten::view_copy.out(Tensor self, SymInt[] size, *, Tensor(a!) out) -> Tensor(a!)
// aten::unsqueeze_copy.out(Tensor self, int dim, *, Tensor(a!) out) -> Tensor(a!)
// aten::squeeze_copy.dim_out(Tensor self, int dim, *, Tensor(a!) out) -> Tensor(a!)
// aten::squeeze_copy.dims_out(Tensor self, int[] dim, *, Tensor(a!) out) -> Tensor(a!)
// aten::expand_copy.out(Tensor self, SymInt[] size, *, bool implicit=False, Tensor(a!) out) -> Tensor(a!)
// aten::permute_copy.out(Tensor self, int[] dims, *, Tensor(a!) out) -> Tensor(a!)
// aten::transpose_copy.int_out(Tensor self, int dim0, int dim1, *, Tensor(a!) out) -> Tensor(a!)
// aten::t_copy.out(Tensor self, *, Tensor(a!) out) -> Tensor(a!)
// aten::select_copy.int_out(Tensor self, int dim, SymInt index, *, Tensor(a!) out) -> Tensor(a!)
// aten::slice_copy.Tensor_out(Tensor self, int dim=0, SymInt? start=None, SymInt? end=None, SymInt step=1, *, Tensor(a!) out) -> Tensor(a!)
//
// Each operator is a strided view of self (sizes, strides in elements and an offset) copied
// into out. Views read self through the strides of its own dim order, so any input layout
// works, and out is written in its own dim order.
#include "kernels/kernel_util.h"
#include "kernels/ops.h"

namespace ei::kernels {
namespace {

struct View {
  std::vector<int64_t> sizes;
  std::vector<int64_t> strides;
  int64_t offset = 0;
};

View identity_view(const Tensor& tensor) {
  return View{tensor.sizes, strides_for(tensor.sizes, tensor.dim_order), 0};
}

Status copy_view(const Args& args, const Tensor& input, Tensor& out, const View& view) {
  if (out.dtype != input.dtype) {
    return args.fail("out", "has dtype " + dtype_name(out.dtype) + ", expected self's dtype " + dtype_name(input.dtype));
  }
  EI_RETURN_IF_ERROR(resize_output(args, out, view.sizes));
  OverlapGuard source(input, out);
  const std::vector<int64_t> out_strides = strides_for(out.sizes, out.dim_order);
  strided_copy(source.data(), view.strides, view.offset, out.data, out_strides, view.sizes,
               element_size(input.dtype));
  return Status::Ok();
}

// Copies self in its logical (row-major) order into out of a new shape with the same numel.
Status copy_reshaped(const Args& args, const Tensor& input, Tensor& out, std::span<const int64_t> sizes) {
  if (out.dtype != input.dtype) {
    return args.fail("out", "has dtype " + dtype_name(out.dtype) + ", expected self's dtype " + dtype_name(input.dtype));
  }
  EI_RETURN_IF_ERROR(require_default_dim_order(args, out, "out"));
  EI_RETURN_IF_ERROR(resize_output(args, out, sizes));
  OverlapGuard source(input, out);
  const std::vector<int64_t> in_strides = strides_for(input.sizes, input.dim_order);
  strided_copy(source.data(), in_strides, 0, out.data, contiguous_strides(input.sizes), input.sizes,
               element_size(input.dtype));
  return Status::Ok();
}

struct SelfOut {
  Tensor* self = nullptr;
  Tensor* out = nullptr;
};

Result<SelfOut> read_self_out(const Args& args, size_t out_index) {
  SelfOut t;
  EI_ASSIGN_OR_RETURN(t.self, args.tensor(0, "self"));
  EI_ASSIGN_OR_RETURN(t.out, args.out_tensor(out_index, "out"));
  return t;
}

}  // namespace

EI_DECLARE_KERNEL(view_copy_out) {
  Args args("aten::view_copy.out", values);
  EI_RETURN_IF_ERROR(args.check_count(3, 1));
  EI_ASSIGN_OR_RETURN(SelfOut t, read_self_out(args, 2));
  EI_ASSIGN_OR_RETURN(std::vector<int64_t> sizes, args.int_list(1, "size"));
  // One size may be -1, inferred from the element count.
  int64_t inferred = -1;
  int64_t known = 1;
  for (size_t d = 0; d < sizes.size(); ++d) {
    if (sizes[d] == -1) {
      if (inferred >= 0) return args.fail("size", "has more than one -1");
      inferred = static_cast<int64_t>(d);
    } else if (sizes[d] < 0) {
      return args.fail("size", "has negative size " + std::to_string(sizes[d]));
    } else {
      const int64_t product = checked_numel(std::vector<int64_t>{known, sizes[d]});
      if (product < 0) return args.fail("size", "has an element count that overflows");
      known = product;
    }
  }
  const int64_t numel = t.self->numel();
  if (inferred >= 0) {
    if (known == 0 || numel % known != 0) {
      return args.fail("size", shape_to_string(sizes) + " is invalid for self of shape " + shape_to_string(t.self->sizes));
    }
    sizes[inferred] = numel / known;
  } else if (known != numel) {
    return args.fail("size", shape_to_string(sizes) + " has " + std::to_string(known) +
                                 " elements but self of shape " + shape_to_string(t.self->sizes) + " has " +
                                 std::to_string(numel));
  }
  return copy_reshaped(args, *t.self, *t.out, sizes);
}

EI_DECLARE_KERNEL(unsqueeze_copy_out) {
  Args args("aten::unsqueeze_copy.out", values);
  EI_RETURN_IF_ERROR(args.check_count(3, 1));
  EI_ASSIGN_OR_RETURN(SelfOut t, read_self_out(args, 2));
  EI_ASSIGN_OR_RETURN(int64_t dim, args.int_value(1, "dim"));
  const int64_t rank = t.self->dim();
  if (dim < -(rank + 1) || dim > rank) {
    return args.fail("dim", "is " + std::to_string(dim) + ", out of range for unsqueezing a tensor of rank " +
                                std::to_string(rank));
  }
  if (dim < 0) dim += rank + 1;
  std::vector<int64_t> sizes = t.self->sizes;
  sizes.insert(sizes.begin() + dim, 1);
  return copy_reshaped(args, *t.self, *t.out, sizes);
}

EI_DECLARE_KERNEL(squeeze_copy_dim_out) {
  Args args("aten::squeeze_copy.dim_out", values);
  EI_RETURN_IF_ERROR(args.check_count(3, 1));
  EI_ASSIGN_OR_RETURN(SelfOut t, read_self_out(args, 2));
  EI_ASSIGN_OR_RETURN(int64_t dim, args.int_value(1, "dim"));
  EI_ASSIGN_OR_RETURN(dim, wrap_dim(args, "dim", dim, t.self->dim()));
  std::vector<int64_t> sizes = t.self->sizes;
  if (!sizes.empty() && sizes[dim] == 1) sizes.erase(sizes.begin() + dim);
  return copy_reshaped(args, *t.self, *t.out, sizes);
}

EI_DECLARE_KERNEL(squeeze_copy_dims_out) {
  Args args("aten::squeeze_copy.dims_out", values);
  EI_RETURN_IF_ERROR(args.check_count(3, 1));
  EI_ASSIGN_OR_RETURN(SelfOut t, read_self_out(args, 2));
  EI_ASSIGN_OR_RETURN(std::vector<int64_t> dims, args.int_list(1, "dim"));
  const int64_t rank = t.self->dim();
  std::vector<bool> remove(static_cast<size_t>(rank), false);
  for (int64_t dim : dims) {
    EI_ASSIGN_OR_RETURN(int64_t d, wrap_dim(args, "dim", dim, rank));
    if (rank > 0 && t.self->sizes[d] == 1) remove[d] = true;
  }
  std::vector<int64_t> sizes;
  for (int64_t d = 0; d < rank; ++d) {
    if (!remove[d]) sizes.push_back(t.self->sizes[d]);
  }
  return copy_reshaped(args, *t.self, *t.out, sizes);
}

EI_DECLARE_KERNEL(expand_copy_out) {
  Args args("aten::expand_copy.out", values);
  EI_RETURN_IF_ERROR(args.check_count(4, 1));
  EI_ASSIGN_OR_RETURN(SelfOut t, read_self_out(args, 3));
  EI_ASSIGN_OR_RETURN(std::vector<int64_t> sizes, args.int_list(1, "size"));
  const Tensor& self = *t.self;
  const size_t rank = sizes.size();
  const size_t in_rank = self.sizes.size();
  if (rank < in_rank) {
    return args.fail("size", shape_to_string(sizes) + " has fewer dims than self of shape " + shape_to_string(self.sizes));
  }
  const std::vector<int64_t> in_strides = strides_for(self.sizes, self.dim_order);
  View view;
  view.sizes.resize(rank);
  view.strides.assign(rank, 0);
  const size_t leading = rank - in_rank;
  for (size_t d = 0; d < rank; ++d) {
    const int64_t target = sizes[d];
    if (d < leading) {
      if (target < 0) return args.fail("size", "has " + std::to_string(target) + " for a new leading dim");
      view.sizes[d] = target;
      continue;
    }
    const int64_t source = self.sizes[d - leading];
    if (target == -1 || target == source) {
      view.sizes[d] = source;
      view.strides[d] = in_strides[d - leading];
    } else if (source == 1 && target >= 0) {
      view.sizes[d] = target;  // broadcast: stride 0 repeats the single element
    } else {
      return args.fail("size", shape_to_string(sizes) + " cannot expand self of shape " + shape_to_string(self.sizes));
    }
  }
  return copy_view(args, self, *t.out, view);
}

EI_DECLARE_KERNEL(permute_copy_out) {
  Args args("aten::permute_copy.out", values);
  EI_RETURN_IF_ERROR(args.check_count(3, 1));
  EI_ASSIGN_OR_RETURN(SelfOut t, read_self_out(args, 2));
  EI_ASSIGN_OR_RETURN(std::vector<int64_t> dims, args.int_list(1, "dims"));
  const int64_t rank = t.self->dim();
  if (static_cast<int64_t>(dims.size()) != rank) {
    return args.fail("dims", "has " + std::to_string(dims.size()) + " entries for a tensor of rank " + std::to_string(rank));
  }
  const View in = identity_view(*t.self);
  View view;
  std::vector<bool> seen(static_cast<size_t>(rank), false);
  for (int64_t dim : dims) {
    EI_ASSIGN_OR_RETURN(int64_t d, wrap_dim(args, "dims", dim, rank));
    if (rank == 0) break;
    if (seen[d]) return args.fail("dims", "repeats dim " + std::to_string(d));
    seen[d] = true;
    view.sizes.push_back(in.sizes[d]);
    view.strides.push_back(in.strides[d]);
  }
  return copy_view(args, *t.self, *t.out, view);
}

namespace {

Status transpose(const Args& args, const SelfOut& t, int64_t dim0, int64_t dim1) {
  const int64_t rank = t.self->dim();
  EI_ASSIGN_OR_RETURN(int64_t d0, wrap_dim(args, "dim0", dim0, rank));
  EI_ASSIGN_OR_RETURN(int64_t d1, wrap_dim(args, "dim1", dim1, rank));
  View view = identity_view(*t.self);
  if (rank > 0) {
    std::swap(view.sizes[d0], view.sizes[d1]);
    std::swap(view.strides[d0], view.strides[d1]);
  }
  return copy_view(args, *t.self, *t.out, view);
}

}  // namespace

EI_DECLARE_KERNEL(transpose_copy_int_out) {
  Args args("aten::transpose_copy.int_out", values);
  EI_RETURN_IF_ERROR(args.check_count(4, 1));
  EI_ASSIGN_OR_RETURN(SelfOut t, read_self_out(args, 3));
  EI_ASSIGN_OR_RETURN(int64_t dim0, args.int_value(1, "dim0"));
  EI_ASSIGN_OR_RETURN(int64_t dim1, args.int_value(2, "dim1"));
  return transpose(args, t, dim0, dim1);
}

EI_DECLARE_KERNEL(t_copy_out) {
  Args args("aten::t_copy.out", values);
  EI_RETURN_IF_ERROR(args.check_count(2, 1));
  EI_ASSIGN_OR_RETURN(SelfOut t, read_self_out(args, 1));
  if (t.self->dim() > 2) {
    return args.fail("self", "has rank " + std::to_string(t.self->dim()) + ", expected at most 2");
  }
  if (t.self->dim() < 2) return copy_view(args, *t.self, *t.out, identity_view(*t.self));
  return transpose(args, t, 0, 1);
}

EI_DECLARE_KERNEL(select_copy_int_out) {
  Args args("aten::select_copy.int_out", values);
  EI_RETURN_IF_ERROR(args.check_count(4, 1));
  EI_ASSIGN_OR_RETURN(SelfOut t, read_self_out(args, 3));
  EI_ASSIGN_OR_RETURN(int64_t dim, args.int_value(1, "dim"));
  EI_ASSIGN_OR_RETURN(int64_t index, args.int_value(2, "index"));
  const int64_t rank = t.self->dim();
  if (rank == 0) return args.fail("self", "is a scalar (rank 0), which cannot be selected from");
  EI_ASSIGN_OR_RETURN(dim, wrap_dim(args, "dim", dim, rank));
  const int64_t size = t.self->sizes[dim];
  if (index < -size || index >= size) {
    return args.fail("index", "is " + std::to_string(index) + ", out of range for dim " + std::to_string(dim) +
                                  " of size " + std::to_string(size));
  }
  if (index < 0) index += size;
  View view = identity_view(*t.self);
  view.offset = index * view.strides[dim];
  view.sizes.erase(view.sizes.begin() + dim);
  view.strides.erase(view.strides.begin() + dim);
  return copy_view(args, *t.self, *t.out, view);
}

EI_DECLARE_KERNEL(slice_copy_tensor_out) {
  Args args("aten::slice_copy.Tensor_out", values);
  EI_RETURN_IF_ERROR(args.check_count(6, 1));
  EI_ASSIGN_OR_RETURN(SelfOut t, read_self_out(args, 5));
  EI_ASSIGN_OR_RETURN(int64_t dim, args.int_value(1, "dim"));
  EI_ASSIGN_OR_RETURN(std::optional<int64_t> start_arg, args.optional_int(2, "start"));
  EI_ASSIGN_OR_RETURN(std::optional<int64_t> end_arg, args.optional_int(3, "end"));
  EI_ASSIGN_OR_RETURN(int64_t step, args.int_value(4, "step"));
  const int64_t rank = t.self->dim();
  if (rank == 0) return args.fail("self", "is a scalar (rank 0), which cannot be sliced");
  EI_ASSIGN_OR_RETURN(dim, wrap_dim(args, "dim", dim, rank));
  if (step <= 0) return args.fail("step", "is " + std::to_string(step) + ", expected a positive value");
  const int64_t size = t.self->sizes[dim];
  // Python slice bounds: negative values count from the end, and both clamp to [0, size].
  auto clamp_bound = [size](int64_t bound) {
    if (bound < 0) bound = bound < -size ? 0 : bound + size;
    return std::min(bound, size);
  };
  const int64_t start = clamp_bound(start_arg.value_or(0));
  const int64_t end = clamp_bound(end_arg.value_or(size));
  const int64_t length = end > start ? (end - start - 1) / step + 1 : 0;
  View view = identity_view(*t.self);
  view.offset = start * view.strides[dim];
  view.sizes[dim] = length;
  view.strides[dim] *= step;
  return copy_view(args, *t.self, *t.out, view);
}

}  // namespace ei::kernels
