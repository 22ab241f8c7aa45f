// aten::mm.out(Tensor self, Tensor mat2, *, Tensor(a!) out) -> Tensor(a!)
// aten::bmm.out(Tensor self, Tensor mat2, *, Tensor(a!) out) -> Tensor(a!)
// aten::addmm.out(Tensor self, Tensor mat1, Tensor mat2, *, Scalar beta=1, Scalar alpha=1, Tensor(a!) out) -> Tensor(a!)
#include "kernels/kernel_util.h"
#include "kernels/ops.h"

namespace ei::kernels {
namespace {

// out[n x m] = a[n x k] * b[k x m], all row-major; loops run i-k-j so that the innermost
// loop walks rows of b and out contiguously. Accumulates in T.
template <typename T>
void matmul(const T* a, const T* b, T* out, int64_t n, int64_t k, int64_t m) {
  std::fill_n(out, n * m, T(0));
  for (int64_t i = 0; i < n; ++i) {
    T* out_row = out + i * m;
    for (int64_t p = 0; p < k; ++p) {
      const T scale = a[i * k + p];
      const T* b_row = b + p * m;
      for (int64_t j = 0; j < m; ++j) out_row[j] += scale * b_row[j];
    }
  }
}

Status check_matrix_inputs(const Args& args, const Tensor& a, std::string_view a_name, const Tensor& b,
                           std::string_view b_name, const Tensor& out, int64_t rank) {
  for (const auto& [tensor, name] : {std::pair{&a, a_name}, {&b, b_name}}) {
    if (tensor->dim() != rank) {
      return args.fail(name, "has rank " + std::to_string(tensor->dim()) + ", expected " + std::to_string(rank));
    }
    if (tensor->dtype != out.dtype) {
      return args.fail(name, "has dtype " + dtype_name(tensor->dtype) + ", expected out's dtype " + dtype_name(out.dtype));
    }
    EI_RETURN_IF_ERROR(require_default_dim_order(args, *tensor, name));
  }
  EI_RETURN_IF_ERROR(require_default_dim_order(args, out, "out"));
  if (a.sizes[rank - 1] != b.sizes[rank - 2]) {
    return args.fail(b_name, "of shape " + shape_to_string(b.sizes) + " cannot be multiplied with " +
                                 std::string(a_name) + " of shape " + shape_to_string(a.sizes));
  }
  return Status::Ok();
}

}  // namespace

EI_DECLARE_KERNEL(mm_out) {
  Args args("aten::mm.out", values);
  EI_RETURN_IF_ERROR(args.check_count(3, 1));
  EI_ASSIGN_OR_RETURN(Tensor * a, args.tensor(0, "self"));
  EI_ASSIGN_OR_RETURN(Tensor * b, args.tensor(1, "mat2"));
  EI_ASSIGN_OR_RETURN(Tensor * out, args.out_tensor(2, "out"));
  EI_RETURN_IF_ERROR(check_matrix_inputs(args, *a, "self", *b, "mat2", *out, 2));
  const int64_t n = a->sizes[0];
  const int64_t k = a->sizes[1];
  const int64_t m = b->sizes[1];
  EI_RETURN_IF_ERROR(resize_output(args, *out, std::vector<int64_t>{n, m}));
  return dispatch<DtypeSet::kFloating>(out->dtype, args.op(), "out", [&]<typename T>() {
    OverlapGuard a_data(*a, *out);
    OverlapGuard b_data(*b, *out);
    matmul(a_data.as<T>(), b_data.as<T>(), out->data_as<T>(), n, k, m);
    return Status::Ok();
  });
}

EI_DECLARE_KERNEL(bmm_out) {
  Args args("aten::bmm.out", values);
  EI_RETURN_IF_ERROR(args.check_count(3, 1));
  EI_ASSIGN_OR_RETURN(Tensor * a, args.tensor(0, "self"));
  EI_ASSIGN_OR_RETURN(Tensor * b, args.tensor(1, "mat2"));
  EI_ASSIGN_OR_RETURN(Tensor * out, args.out_tensor(2, "out"));
  EI_RETURN_IF_ERROR(check_matrix_inputs(args, *a, "self", *b, "mat2", *out, 3));
  if (a->sizes[0] != b->sizes[0]) {
    return args.fail("mat2", "has batch size " + std::to_string(b->sizes[0]) + ", expected self's " + std::to_string(a->sizes[0]));
  }
  const int64_t batch = a->sizes[0];
  const int64_t n = a->sizes[1];
  const int64_t k = a->sizes[2];
  const int64_t m = b->sizes[2];
  EI_RETURN_IF_ERROR(resize_output(args, *out, std::vector<int64_t>{batch, n, m}));
  return dispatch<DtypeSet::kFloating>(out->dtype, args.op(), "out", [&]<typename T>() {
    OverlapGuard a_data(*a, *out);
    OverlapGuard b_data(*b, *out);
    for (int64_t i = 0; i < batch; ++i) {
      matmul(a_data.as<T>() + i * n * k, b_data.as<T>() + i * k * m, out->data_as<T>() + i * n * m, n, k, m);
    }
    return Status::Ok();
  });
}

// out = beta * self + alpha * (mat1 @ mat2), with self broadcast to the product's shape.
// As ATen, beta == 0 ignores self entirely (NaN or inf in self do not propagate).
EI_DECLARE_KERNEL(addmm_out) {
  Args args("aten::addmm.out", values);
  EI_RETURN_IF_ERROR(args.check_count(6, 1));
  EI_ASSIGN_OR_RETURN(Tensor * self, args.tensor(0, "self"));
  EI_ASSIGN_OR_RETURN(Tensor * a, args.tensor(1, "mat1"));
  EI_ASSIGN_OR_RETURN(Tensor * b, args.tensor(2, "mat2"));
  EI_ASSIGN_OR_RETURN(Scalar beta_value, args.scalar(3, "beta"));
  EI_ASSIGN_OR_RETURN(Scalar alpha_value, args.scalar(4, "alpha"));
  EI_ASSIGN_OR_RETURN(Tensor * out, args.out_tensor(5, "out"));
  EI_RETURN_IF_ERROR(check_matrix_inputs(args, *a, "mat1", *b, "mat2", *out, 2));
  if (self->dtype != out->dtype) {
    return args.fail("self", "has dtype " + dtype_name(self->dtype) + ", expected out's dtype " + dtype_name(out->dtype));
  }
  EI_RETURN_IF_ERROR(require_default_dim_order(args, *self, "self"));
  const int64_t n = a->sizes[0];
  const int64_t k = a->sizes[1];
  const int64_t m = b->sizes[1];
  const std::vector<int64_t> product_sizes{n, m};
  EI_ASSIGN_OR_RETURN(std::vector<int64_t> broadcast, broadcast_shapes(args, self->sizes, product_sizes));
  if (broadcast != product_sizes) {
    return args.fail("self", "of shape " + shape_to_string(self->sizes) + " does not broadcast to the product's shape " +
                                 shape_to_string(product_sizes));
  }
  const std::vector<int64_t> self_sizes = self->sizes;
  EI_RETURN_IF_ERROR(resize_output(args, *out, product_sizes));
  return dispatch<DtypeSet::kFloating>(out->dtype, args.op(), "out", [&]<typename T>() {
    OverlapGuard self_data(*self, *out);
    OverlapGuard a_data(*a, *out);
    OverlapGuard b_data(*b, *out);
    T* y = out->data_as<T>();
    matmul(a_data.as<T>(), b_data.as<T>(), y, n, k, m);
    const T alpha = alpha_value.to<T>();
    const T beta = beta_value.to<T>();
    const T* c = self_data.as<T>();
    broadcast_for_each<1>(product_sizes, {std::span<const int64_t>(self_sizes)},
                          [&](int64_t i, const std::array<int64_t, 1>& idx) {
                            y[i] = beta == T(0) ? alpha * y[i] : beta * c[idx[0]] + alpha * y[i];
                          });
    return Status::Ok();
  });
}

}  // namespace ei::kernels
