// aten::mean.out(Tensor self, int[1]? dim, bool keepdim=False, *, ScalarType? dtype=None, Tensor(a!) out) -> Tensor(a!)
// aten::mean.dtype_out(Tensor self, *, ScalarType? dtype=None, Tensor(a!) out) -> Tensor(a!)
// aten::sum.IntList_out(Tensor self, int[1]? dim, bool keepdim=False, *, ScalarType? dtype=None, Tensor(a!) out) -> Tensor(a!)
// aten::amax.out(Tensor self, int[1] dim=[], bool keepdim=False, *, Tensor(a!) out) -> Tensor(a!)
// aten::amin.out(Tensor self, int[1] dim=[], bool keepdim=False, *, Tensor(a!) out) -> Tensor(a!)
// aten::argmax.out(Tensor self, int? dim=None, bool keepdim=False, *, Tensor(a!) out) -> Tensor(a!)
// aten::argmin.out(Tensor self, int? dim=None, bool keepdim=False, *, Tensor(a!) out) -> Tensor(a!)
// aten::max.dim_max(Tensor self, int dim, bool keepdim=False, *, Tensor(a!) max, Tensor(b!) max_values) -> (Tensor(a!) values, Tensor(b!) indices)
// aten::min.dim_min(Tensor self, int dim, bool keepdim=False, *, Tensor(a!) min, Tensor(b!) min_indices) -> (Tensor(a!) values, Tensor(b!) indices)
// aten::var.correction_out(Tensor self, int[1]? dim=None, *, Scalar? correction=None, bool keepdim=False, Tensor(a!) out) -> Tensor(a!)
// aten::var.out(Tensor self, int[1]? dim, bool unbiased=True, bool keepdim=False, *, Tensor(a!) out) -> Tensor(a!)
// aten::linalg_vector_norm.out(Tensor self, Scalar ord=2, int[1]? dim=None, bool keepdim=False, *, ScalarType? dtype=None, Tensor(a!) out) -> Tensor(a!)
// aten::cumsum.out(Tensor self, int dim, *, ScalarType? dtype=None, Tensor(a!) out) -> Tensor(a!)
//
// Floating reductions accumulate in double and integral ones in int64 (wrapping).
#include <cmath>

#include "kernels/kernel_util.h"
#include "kernels/ops.h"

namespace ei::kernels {
namespace {

// Where each output element's inputs are: the input offset of its first element, and the
// offsets of the reduced elements relative to it (row-major over the reduced dims).
struct Reduction {
  std::vector<int64_t> out_sizes;
  std::vector<int64_t> kept_offsets;
  std::vector<int64_t> reduced_offsets;
};

void append_offsets(std::span<const int64_t> sizes, std::span<const int64_t> strides, std::vector<int64_t>& offsets) {
  const int64_t count = shape_numel(sizes);
  offsets.reserve(static_cast<size_t>(count));
  std::vector<int64_t> counter(sizes.size(), 0);
  int64_t offset = 0;
  for (int64_t i = 0; i < count; ++i) {
    offsets.push_back(offset);
    for (size_t d = sizes.size(); d-- > 0;) {
      ++counter[d];
      offset += strides[d];
      if (counter[d] < sizes[d]) break;
      offset -= strides[d] * sizes[d];
      counter[d] = 0;
    }
  }
}

// Plans a reduction of `self` over `dims` (None or empty: every dim) and resizes out. The
// offsets are built only for a non-empty input, whose element count bounds them.
Result<Reduction> plan_reduction(const Args& args, const Tensor& self, const std::optional<std::vector<int64_t>>& dims,
                                 bool keepdim, Tensor& out, std::string_view out_name = "out") {
  const int64_t rank = self.dim();
  std::vector<bool> reduced(static_cast<size_t>(rank), false);
  if (!dims || dims->empty()) {
    reduced.assign(static_cast<size_t>(rank), true);
  } else {
    for (int64_t dim : *dims) {
      EI_ASSIGN_OR_RETURN(int64_t d, wrap_dim(args, "dim", dim, rank));
      if (rank == 0) continue;
      if (reduced[d]) return args.fail("dim", "repeats dim " + std::to_string(d));
      reduced[d] = true;
    }
  }
  Reduction plan;
  std::vector<int64_t> kept_sizes, kept_strides, reduced_sizes, reduced_strides;
  const std::vector<int64_t> strides = strides_for(self.sizes, self.dim_order);
  for (int64_t d = 0; d < rank; ++d) {
    if (reduced[d]) {
      reduced_sizes.push_back(self.sizes[d]);
      reduced_strides.push_back(strides[d]);
      if (keepdim) plan.out_sizes.push_back(1);
    } else {
      kept_sizes.push_back(self.sizes[d]);
      kept_strides.push_back(strides[d]);
      plan.out_sizes.push_back(self.sizes[d]);
    }
  }
  EI_RETURN_IF_ERROR(require_default_dim_order(args, out, out_name));
  EI_RETURN_IF_ERROR(resize_output(args, out, plan.out_sizes, out_name));
  if (self.numel() > 0) {
    append_offsets(kept_sizes, kept_strides, plan.kept_offsets);
    append_offsets(reduced_sizes, reduced_strides, plan.reduced_offsets);
  } else {
    plan.kept_offsets.assign(static_cast<size_t>(out.numel()), 0);  // no elements are read
  }
  return plan;
}

// Calls fn(out_index, row) for each output element, where row(r) is the r-th reduced value.
template <typename T, typename Fn>
void for_each_reduction(const Reduction& plan, const T* data, Fn&& fn) {
  const int64_t count = static_cast<int64_t>(plan.kept_offsets.size());
  for (int64_t o = 0; o < count; ++o) {
    const T* base = data + plan.kept_offsets[o];
    fn(o, [&](int64_t r) { return base[plan.reduced_offsets[r]]; });
  }
}

Status check_out_dtype(const Args& args, const Tensor& out, ScalarType expected, std::string_view name = "out") {
  if (out.dtype == expected) return Status::Ok();
  return args.fail(name, "has dtype " + dtype_name(out.dtype) + ", expected " + dtype_name(expected));
}

// Sum or mean of self into out, in out's dtype.
Status sum_or_mean(const Args& args, const Tensor& self, const std::optional<std::vector<int64_t>>& dims, bool keepdim,
                   std::optional<ScalarType> dtype, Tensor& out, bool mean) {
  if (dtype) EI_RETURN_IF_ERROR(check_out_dtype(args, out, *dtype));
  if (mean && !is_floating_type(out.dtype)) {
    return args.fail("out", "has dtype " + dtype_name(out.dtype) + ", but a mean needs a floating dtype");
  }
  if (!dtype && !can_cast(self.dtype, out.dtype)) {
    return args.fail("out", "has dtype " + dtype_name(out.dtype) + ", which self's dtype " + dtype_name(self.dtype) +
                                " cannot be cast to");
  }
  EI_ASSIGN_OR_RETURN(Reduction plan, plan_reduction(args, self, dims, keepdim, out));
  const int64_t count = static_cast<int64_t>(plan.reduced_offsets.size());
  if (is_floating_type(out.dtype)) {
    InputView<double> x(self, &out, false);
    OutputView<double> result(out);
    for_each_reduction(plan, x.data(), [&](int64_t o, auto row) {
      double sum = 0;
      for (int64_t r = 0; r < count; ++r) sum += row(r);
      result[o] = mean ? sum / static_cast<double>(count) : sum;  // an empty mean is NaN
    });
    result.commit();
    return Status::Ok();
  }
  InputView<int64_t> x(self, &out, false);
  OutputView<int64_t> result(out);
  for_each_reduction(plan, x.data(), [&](int64_t o, auto row) {
    int64_t sum = 0;
    for (int64_t r = 0; r < count; ++r) sum = wrapping_add(sum, row(r));
    result[o] = sum;
  });
  result.commit();
  return Status::Ok();
}

}  // namespace

EI_DECLARE_KERNEL(mean_out) {
  Args args("aten::mean.out", values);
  EI_RETURN_IF_ERROR(args.check_count(5, 1));
  EI_ASSIGN_OR_RETURN(Tensor * self, args.tensor(0, "self"));
  EI_ASSIGN_OR_RETURN(std::optional<std::vector<int64_t>> dims, args.optional_int_list(1, "dim"));
  EI_ASSIGN_OR_RETURN(bool keepdim, args.bool_value(2, "keepdim"));
  EI_ASSIGN_OR_RETURN(std::optional<ScalarType> dtype, args.optional_dtype(3, "dtype"));
  EI_ASSIGN_OR_RETURN(Tensor * out, args.out_tensor(4, "out"));
  return sum_or_mean(args, *self, dims, keepdim, dtype, *out, true);
}

EI_DECLARE_KERNEL(mean_dtype_out) {
  Args args("aten::mean.dtype_out", values);
  EI_RETURN_IF_ERROR(args.check_count(3, 1));
  EI_ASSIGN_OR_RETURN(Tensor * self, args.tensor(0, "self"));
  EI_ASSIGN_OR_RETURN(std::optional<ScalarType> dtype, args.optional_dtype(1, "dtype"));
  EI_ASSIGN_OR_RETURN(Tensor * out, args.out_tensor(2, "out"));
  return sum_or_mean(args, *self, std::nullopt, false, dtype, *out, true);
}

EI_DECLARE_KERNEL(sum_int_list_out) {
  Args args("aten::sum.IntList_out", values);
  EI_RETURN_IF_ERROR(args.check_count(5, 1));
  EI_ASSIGN_OR_RETURN(Tensor * self, args.tensor(0, "self"));
  EI_ASSIGN_OR_RETURN(std::optional<std::vector<int64_t>> dims, args.optional_int_list(1, "dim"));
  EI_ASSIGN_OR_RETURN(bool keepdim, args.bool_value(2, "keepdim"));
  EI_ASSIGN_OR_RETURN(std::optional<ScalarType> dtype, args.optional_dtype(3, "dtype"));
  EI_ASSIGN_OR_RETURN(Tensor * out, args.out_tensor(4, "out"));
  return sum_or_mean(args, *self, dims, keepdim, dtype, *out, false);
}

namespace {

// amax/amin: NaN wins, as ATen.
Status extremum(std::span<EValue* const> values, const char* name, bool max) {
  Args args(name, values);
  EI_RETURN_IF_ERROR(args.check_count(4, 1));
  EI_ASSIGN_OR_RETURN(Tensor * self, args.tensor(0, "self"));
  EI_ASSIGN_OR_RETURN(std::vector<int64_t> dims, args.int_list(1, "dim"));
  EI_ASSIGN_OR_RETURN(bool keepdim, args.bool_value(2, "keepdim"));
  EI_ASSIGN_OR_RETURN(Tensor * out, args.out_tensor(3, "out"));
  EI_RETURN_IF_ERROR(check_out_dtype(args, *out, self->dtype));
  EI_ASSIGN_OR_RETURN(Reduction plan, plan_reduction(args, *self, dims, keepdim, *out));
  const int64_t count = static_cast<int64_t>(plan.reduced_offsets.size());
  if (count == 0 && out->numel() > 0) return args.fail("self", "is empty along the reduced dims, which have no max or min");
  return dispatch<DtypeSet::kAll>(self->dtype, args.op(), "self", [&]<typename T>() {
    InputView<T> x(*self, out, false);
    T* y = out->data_as<T>();
    for_each_reduction(plan, x.data(), [&](int64_t o, auto row) {
      T best = row(0);
      for (int64_t r = 1; r < count; ++r) {
        const T v = row(r);
        if constexpr (std::is_floating_point_v<T>) {
          if (std::isnan(best)) break;
          if (std::isnan(v)) {
            best = v;
            break;
          }
        }
        if (max ? v > best : v < best) best = v;
      }
      y[o] = best;
    });
    return Status::Ok();
  });
}

// Index of the first max (or min) along the reduced elements; the first NaN wins.
template <typename T, typename Row>
int64_t arg_extremum(Row row, int64_t count, bool max, T* best_value) {
  T best = row(0);
  int64_t best_index = 0;
  for (int64_t r = 1; r < count; ++r) {
    const T v = row(r);
    if constexpr (std::is_floating_point_v<T>) {
      if (std::isnan(best)) break;
      if (std::isnan(v)) {
        best = v;
        best_index = r;
        break;
      }
    }
    if (max ? v > best : v < best) {
      best = v;
      best_index = r;
    }
  }
  *best_value = best;
  return best_index;
}

Status arg_reduce(std::span<EValue* const> values, const char* name, bool max) {
  Args args(name, values);
  EI_RETURN_IF_ERROR(args.check_count(4, 1));
  EI_ASSIGN_OR_RETURN(Tensor * self, args.tensor(0, "self"));
  EI_ASSIGN_OR_RETURN(std::optional<int64_t> dim, args.optional_int(1, "dim"));
  EI_ASSIGN_OR_RETURN(bool keepdim, args.bool_value(2, "keepdim"));
  EI_ASSIGN_OR_RETURN(Tensor * out, args.out_tensor(3, "out"));
  EI_RETURN_IF_ERROR(check_out_dtype(args, *out, ScalarType::kLong));
  if (self->numel() == 0) return args.fail("self", "is empty, which has no argmax or argmin");
  std::optional<std::vector<int64_t>> dims;
  if (dim) dims = std::vector<int64_t>{*dim};
  // Without dim the index is into the flattened input, in row-major order.
  EI_ASSIGN_OR_RETURN(Reduction plan, plan_reduction(args, *self, dims, keepdim, *out));
  const int64_t count = static_cast<int64_t>(plan.reduced_offsets.size());
  return dispatch<DtypeSet::kAll>(self->dtype, args.op(), "self", [&]<typename T>() {
    InputView<T> x(*self, out, false);
    int64_t* y = out->data_as<int64_t>();
    for_each_reduction(plan, x.data(), [&](int64_t o, auto row) {
      T best;
      y[o] = arg_extremum<T>(row, count, max, &best);
    });
    return Status::Ok();
  });
}

Status extremum_with_index(std::span<EValue* const> values, const char* name, bool max) {
  Args args(name, values);
  EI_RETURN_IF_ERROR(args.check_count(5, 2));
  EI_ASSIGN_OR_RETURN(Tensor * self, args.tensor(0, "self"));
  EI_ASSIGN_OR_RETURN(int64_t dim, args.int_value(1, "dim"));
  EI_ASSIGN_OR_RETURN(bool keepdim, args.bool_value(2, "keepdim"));
  EI_ASSIGN_OR_RETURN(Tensor * values_out, args.out_tensor(3, max ? "max" : "min"));
  EI_ASSIGN_OR_RETURN(Tensor * indices_out, args.out_tensor(4, max ? "max_values" : "min_indices"));
  EI_RETURN_IF_ERROR(check_out_dtype(args, *values_out, self->dtype, max ? "max" : "min"));
  EI_RETURN_IF_ERROR(check_out_dtype(args, *indices_out, ScalarType::kLong, max ? "max_values" : "min_indices"));
  const std::optional<std::vector<int64_t>> dims = std::vector<int64_t>{dim};
  EI_ASSIGN_OR_RETURN(Reduction plan, plan_reduction(args, *self, dims, keepdim, *values_out, max ? "max" : "min"));
  EI_RETURN_IF_ERROR(resize_output(args, *indices_out, plan.out_sizes, max ? "max_values" : "min_indices"));
  const int64_t count = static_cast<int64_t>(plan.reduced_offsets.size());
  if (count == 0 && values_out->numel() > 0) return args.fail("self", "is empty along dim, which has no max or min");
  return dispatch<DtypeSet::kAll>(self->dtype, args.op(), "self", [&]<typename T>() {
    InputView<T> x(*self);
    std::unique_ptr<T[]> best_values = std::make_unique<T[]>(plan.kept_offsets.size() + 1);
    std::unique_ptr<int64_t[]> best_indices = std::make_unique<int64_t[]>(plan.kept_offsets.size() + 1);
    for_each_reduction(plan, x.data(), [&](int64_t o, auto row) {
      best_indices[o] = arg_extremum<T>(row, count, max, &best_values[o]);
    });
    // Written last, because the outputs may overlap self.
    std::copy_n(best_values.get(), plan.kept_offsets.size(), values_out->data_as<T>());
    std::copy_n(best_indices.get(), plan.kept_offsets.size(), indices_out->data_as<int64_t>());
    return Status::Ok();
  });
}

Status variance(const Args& args, const Tensor& self, const std::optional<std::vector<int64_t>>& dims, double correction,
                bool keepdim, Tensor& out) {
  if (!is_floating_type(self.dtype)) return unsupported_dtype(args.op(), "self", self.dtype);
  EI_RETURN_IF_ERROR(check_out_dtype(args, out, self.dtype));
  EI_ASSIGN_OR_RETURN(Reduction plan, plan_reduction(args, self, dims, keepdim, out));
  const int64_t count = static_cast<int64_t>(plan.reduced_offsets.size());
  const double divisor = std::max(0.0, static_cast<double>(count) - correction);
  InputView<double> x(self, &out, false);
  OutputView<double> result(out);
  for_each_reduction(plan, x.data(), [&](int64_t o, auto row) {
    double sum = 0;
    for (int64_t r = 0; r < count; ++r) sum += row(r);
    const double mean = sum / static_cast<double>(count);
    double squares = 0;
    for (int64_t r = 0; r < count; ++r) squares += (row(r) - mean) * (row(r) - mean);
    result[o] = count == 0 ? std::nan("") : squares / divisor;
  });
  result.commit();
  return Status::Ok();
}

}  // namespace

EI_DECLARE_KERNEL(amax_out) { return extremum(values, "aten::amax.out", true); }
EI_DECLARE_KERNEL(amin_out) { return extremum(values, "aten::amin.out", false); }
EI_DECLARE_KERNEL(argmax_out) { return arg_reduce(values, "aten::argmax.out", true); }
EI_DECLARE_KERNEL(argmin_out) { return arg_reduce(values, "aten::argmin.out", false); }
EI_DECLARE_KERNEL(max_dim_max) { return extremum_with_index(values, "aten::max.dim_max", true); }
EI_DECLARE_KERNEL(min_dim_min) { return extremum_with_index(values, "aten::min.dim_min", false); }

EI_DECLARE_KERNEL(var_correction_out) {
  Args args("aten::var.correction_out", values);
  EI_RETURN_IF_ERROR(args.check_count(5, 1));
  EI_ASSIGN_OR_RETURN(Tensor * self, args.tensor(0, "self"));
  EI_ASSIGN_OR_RETURN(std::optional<std::vector<int64_t>> dims, args.optional_int_list(1, "dim"));
  EI_ASSIGN_OR_RETURN(std::optional<Scalar> correction, args.optional_scalar(2, "correction"));
  EI_ASSIGN_OR_RETURN(bool keepdim, args.bool_value(3, "keepdim"));
  EI_ASSIGN_OR_RETURN(Tensor * out, args.out_tensor(4, "out"));
  return variance(args, *self, dims, correction ? correction->to_double() : 1.0, keepdim, *out);
}

EI_DECLARE_KERNEL(var_out) {
  Args args("aten::var.out", values);
  EI_RETURN_IF_ERROR(args.check_count(5, 1));
  EI_ASSIGN_OR_RETURN(Tensor * self, args.tensor(0, "self"));
  EI_ASSIGN_OR_RETURN(std::optional<std::vector<int64_t>> dims, args.optional_int_list(1, "dim"));
  EI_ASSIGN_OR_RETURN(bool unbiased, args.bool_value(2, "unbiased"));
  EI_ASSIGN_OR_RETURN(bool keepdim, args.bool_value(3, "keepdim"));
  EI_ASSIGN_OR_RETURN(Tensor * out, args.out_tensor(4, "out"));
  return variance(args, *self, dims, unbiased ? 1.0 : 0.0, keepdim, *out);
}

// ord: inf (max |x|), -inf (min |x|), 0 (count of nonzeros) or p ((sum |x|^p)^(1/p)).
EI_DECLARE_KERNEL(linalg_vector_norm_out) {
  Args args("aten::linalg_vector_norm.out", values);
  EI_RETURN_IF_ERROR(args.check_count(6, 1));
  EI_ASSIGN_OR_RETURN(Tensor * self, args.tensor(0, "self"));
  EI_ASSIGN_OR_RETURN(Scalar ord_value, args.scalar(1, "ord"));
  EI_ASSIGN_OR_RETURN(std::optional<std::vector<int64_t>> dims, args.optional_int_list(2, "dim"));
  EI_ASSIGN_OR_RETURN(bool keepdim, args.bool_value(3, "keepdim"));
  EI_ASSIGN_OR_RETURN(std::optional<ScalarType> dtype, args.optional_dtype(4, "dtype"));
  EI_ASSIGN_OR_RETURN(Tensor * out, args.out_tensor(5, "out"));
  if (!is_floating_type(self->dtype)) return unsupported_dtype(args.op(), "self", self->dtype);
  EI_RETURN_IF_ERROR(check_out_dtype(args, *out, dtype.value_or(self->dtype)));
  if (!is_floating_type(out->dtype)) return unsupported_dtype(args.op(), "out", out->dtype);
  const double ord = ord_value.to_double();
  EI_ASSIGN_OR_RETURN(Reduction plan, plan_reduction(args, *self, dims, keepdim, *out));
  const int64_t count = static_cast<int64_t>(plan.reduced_offsets.size());
  if (count == 0 && out->numel() > 0 && ord < 0) {
    return args.fail("self", "is empty along the reduced dims, where a negative-order norm is undefined");
  }
  InputView<double> x(*self, out, false);
  OutputView<double> result(*out);
  for_each_reduction(plan, x.data(), [&](int64_t o, auto row) {
    double norm = 0;
    if (std::isinf(ord)) {
      norm = ord > 0 ? 0.0 : INFINITY;
      for (int64_t r = 0; r < count; ++r) {
        const double a = std::fabs(row(r));
        if (std::isnan(a)) {
          norm = a;
          break;
        }
        norm = ord > 0 ? std::max(norm, a) : std::min(norm, a);
      }
    } else if (ord == 0) {
      for (int64_t r = 0; r < count; ++r) norm += row(r) != 0 ? 1.0 : 0.0;
    } else if (ord == 1) {
      for (int64_t r = 0; r < count; ++r) norm += std::fabs(row(r));
    } else if (ord == 2) {
      for (int64_t r = 0; r < count; ++r) norm += row(r) * row(r);
      norm = std::sqrt(norm);
    } else {
      for (int64_t r = 0; r < count; ++r) norm += std::pow(std::fabs(row(r)), ord);
      norm = std::pow(norm, 1.0 / ord);
    }
    result[o] = norm;
  });
  result.commit();
  return Status::Ok();
}

EI_DECLARE_KERNEL(cumsum_out) {
  Args args("aten::cumsum.out", values);
  EI_RETURN_IF_ERROR(args.check_count(4, 1));
  EI_ASSIGN_OR_RETURN(Tensor * self, args.tensor(0, "self"));
  EI_ASSIGN_OR_RETURN(int64_t dim, args.int_value(1, "dim"));
  EI_ASSIGN_OR_RETURN(std::optional<ScalarType> dtype, args.optional_dtype(2, "dtype"));
  EI_ASSIGN_OR_RETURN(Tensor * out, args.out_tensor(3, "out"));
  // Without dtype, integral and bool inputs sum into int64, as ATen.
  const ScalarType expected = dtype.value_or(is_floating_type(self->dtype) ? self->dtype : ScalarType::kLong);
  EI_RETURN_IF_ERROR(check_out_dtype(args, *out, expected));
  EI_RETURN_IF_ERROR(require_default_dim_order(args, *self, "self"));
  EI_RETURN_IF_ERROR(require_default_dim_order(args, *out, "out"));
  const int64_t rank = self->dim();
  EI_ASSIGN_OR_RETURN(dim, wrap_dim(args, "dim", dim, rank));
  const std::vector<int64_t> sizes = self->sizes;
  EI_RETURN_IF_ERROR(resize_output(args, *out, sizes));
  if (out->numel() == 0) return Status::Ok();
  const int64_t length = rank == 0 ? 1 : sizes[dim];
  const int64_t outer = rank == 0 ? 1 : shape_numel(std::span(sizes).subspan(0, dim));
  const int64_t inner = rank == 0 ? 1 : shape_numel(std::span(sizes).subspan(dim + 1));
  auto scan = [&]<typename Acc>() {
    InputView<Acc> x(*self, out);  // in place is safe: each element is read before it is written
    OutputView<Acc> result(*out);
    for (int64_t o = 0; o < outer; ++o) {
      for (int64_t i = 0; i < inner; ++i) {
        Acc running = 0;
        for (int64_t k = 0; k < length; ++k) {
          const int64_t at = (o * length + k) * inner + i;
          if constexpr (std::is_integral_v<Acc>) running = wrapping_add(running, x[at]);
          else running += x[at];
          result[at] = running;
        }
      }
    }
    result.commit();
    return Status::Ok();
  };
  if (is_floating_type(out->dtype)) return scan.template operator()<double>();
  return scan.template operator()<int64_t>();
}

}  // namespace ei::kernels
