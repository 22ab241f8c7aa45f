// aten::constant_pad_nd.out(Tensor self, SymInt[] pad, Scalar value=0, *, Tensor(a!) out) -> Tensor(a!)
// aten::repeat.out(Tensor self, SymInt[] repeats, *, Tensor(a!) out) -> Tensor(a!)
#include "kernels/kernel_util.h"
#include "kernels/ops.h"

namespace ei::kernels {

// pad holds (before, after) pairs starting from the last dim; negative values crop.
EI_DECLARE_KERNEL(constant_pad_nd_out) {
  Args args("aten::constant_pad_nd.out", values);
  EI_RETURN_IF_ERROR(args.check_count(4, 1));
  EI_ASSIGN_OR_RETURN(Tensor * self, args.tensor(0, "self"));
  EI_ASSIGN_OR_RETURN(std::vector<int64_t> pad, args.int_list(1, "pad"));
  EI_ASSIGN_OR_RETURN(Scalar value, args.scalar(2, "value"));
  EI_ASSIGN_OR_RETURN(Tensor * out, args.out_tensor(3, "out"));
  const size_t rank = self->sizes.size();
  if (pad.size() % 2 != 0 || pad.size() / 2 > rank) {
    return args.fail("pad", "has " + std::to_string(pad.size()) + " entries, expected an even count of at most " +
                                std::to_string(2 * rank));
  }
  if (out->dtype != self->dtype) {
    return args.fail("out", "has dtype " + dtype_name(out->dtype) + ", expected self's dtype " + dtype_name(self->dtype));
  }
  EI_RETURN_IF_ERROR(require_default_dim_order(args, *self, "self"));
  EI_RETURN_IF_ERROR(require_default_dim_order(args, *out, "out"));
  std::vector<int64_t> before(rank, 0);
  std::vector<int64_t> sizes = self->sizes;
  for (size_t k = 0; k < pad.size() / 2; ++k) {
    const size_t d = rank - 1 - k;
    const int64_t lo = pad[2 * k];
    const int64_t hi = pad[2 * k + 1];
    constexpr int64_t kLimit = int64_t{1} << 48;  // keeps the sum below from overflowing
    if (lo < -kLimit || lo > kLimit || hi < -kLimit || hi > kLimit || sizes[d] + lo + hi < 0) {
      return args.fail("pad", shape_to_string(pad) + " gives a negative or too large size for dim " + std::to_string(d));
    }
    before[d] = lo;
    sizes[d] += lo + hi;
  }
  EI_RETURN_IF_ERROR(resize_output(args, *out, sizes));
  OverlapGuard source(*self, *out);

  EI_RETURN_IF_ERROR(dispatch<DtypeSet::kAll>(out->dtype, args.op(), "out", [&]<typename T>() {
    std::fill_n(out->data_as<T>(), out->numel(), value.to<T>());
    return Status::Ok();
  }));
  // Copy the part of self that lands inside out.
  const std::vector<int64_t> in_strides = contiguous_strides(self->sizes);
  const std::vector<int64_t> out_strides = contiguous_strides(sizes);
  std::vector<int64_t> region(rank);
  int64_t src_offset = 0;
  int64_t dst_offset = 0;
  for (size_t d = 0; d < rank; ++d) {
    const int64_t in_start = std::max<int64_t>(0, -before[d]);
    const int64_t out_start = std::max<int64_t>(0, before[d]);
    region[d] = std::max<int64_t>(0, std::min(self->sizes[d] - in_start, sizes[d] - out_start));
    src_offset += in_start * in_strides[d];
    dst_offset += out_start * out_strides[d];
  }
  if (shape_numel(region) == 0) return Status::Ok();
  const size_t bytes = element_size(out->dtype);
  strided_copy(source.data(), in_strides, src_offset, static_cast<std::byte*>(out->data) + dst_offset * bytes,
               out_strides, region, bytes);
  return Status::Ok();
}

EI_DECLARE_KERNEL(repeat_out) {
  Args args("aten::repeat.out", values);
  EI_RETURN_IF_ERROR(args.check_count(3, 1));
  EI_ASSIGN_OR_RETURN(Tensor * self, args.tensor(0, "self"));
  EI_ASSIGN_OR_RETURN(std::vector<int64_t> repeats, args.int_list(1, "repeats"));
  EI_ASSIGN_OR_RETURN(Tensor * out, args.out_tensor(2, "out"));
  const size_t rank = repeats.size();
  const size_t in_rank = self->sizes.size();
  if (rank < in_rank) {
    return args.fail("repeats", "has " + std::to_string(rank) + " entries, fewer than self's rank " + std::to_string(in_rank));
  }
  if (out->dtype != self->dtype) {
    return args.fail("out", "has dtype " + dtype_name(out->dtype) + ", expected self's dtype " + dtype_name(self->dtype));
  }
  EI_RETURN_IF_ERROR(require_default_dim_order(args, *out, "out"));
  const std::vector<int64_t> in_strides = strides_for(self->sizes, self->dim_order);
  // out of shape [r0 * s0, r1 * s1, ...] is, element for element, the row-major tensor of
  // shape [r0, s0, r1, s1, ...] whose value at (i_r0, i_s0, ...) is self[i_s0, ...].
  std::vector<int64_t> sizes(rank);
  std::vector<int64_t> view_sizes;
  std::vector<int64_t> view_strides;
  for (size_t d = 0; d < rank; ++d) {
    if (repeats[d] < 0) return args.fail("repeats", "has negative entry " + std::to_string(repeats[d]));
    const size_t leading = rank - in_rank;
    const int64_t size = d < leading ? 1 : self->sizes[d - leading];
    const int64_t stride = d < leading ? 0 : in_strides[d - leading];
    const int64_t product = checked_numel(std::vector<int64_t>{repeats[d], size});
    if (product < 0) return args.fail("repeats", "gives a size that overflows");
    sizes[d] = product;
    view_sizes.push_back(repeats[d]);
    view_sizes.push_back(size);
    view_strides.push_back(0);
    view_strides.push_back(stride);
  }
  EI_RETURN_IF_ERROR(resize_output(args, *out, sizes));
  OverlapGuard source(*self, *out);
  strided_copy(source.data(), view_strides, 0, out->data, contiguous_strides(view_sizes), view_sizes,
               element_size(self->dtype));
  return Status::Ok();
}

}  // namespace ei::kernels
