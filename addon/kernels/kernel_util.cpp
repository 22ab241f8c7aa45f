#include "kernels/kernel_util.h"

#include <sstream>

namespace ei::kernels {

int64_t Scalar::to_int() const {
  if (tag == Tag::kDouble) return cast_value<int64_t>(double_value);
  if (tag == Tag::kBool) return bool_value ? 1 : 0;
  return int_value;
}

// ---------------------------------------------------------------------------------------
// Dtypes

bool is_floating_type(ScalarType type) {
  return type == ScalarType::kFloat || type == ScalarType::kDouble ||
         type == ScalarType::kHalf || type == ScalarType::kBFloat16;
}

bool is_integral_type(ScalarType type, bool include_bool) {
  switch (type) {
    case ScalarType::kByte:
    case ScalarType::kChar:
    case ScalarType::kShort:
    case ScalarType::kInt:
    case ScalarType::kLong: return true;
    case ScalarType::kBool: return include_bool;
    default: return false;
  }
}

namespace {

// Rank of a type within its category, for promotion among the supported types.
int category(ScalarType type) {
  if (type == ScalarType::kBool) return 0;
  if (is_integral_type(type, false)) return 1;
  return 2;
}

int integer_bits(ScalarType type) {
  switch (type) {
    case ScalarType::kByte:
    case ScalarType::kChar: return 8;
    case ScalarType::kShort: return 16;
    case ScalarType::kInt: return 32;
    default: return 64;
  }
}

}  // namespace

ScalarType promote_types(ScalarType a, ScalarType b) {
  if (a == b) return a;
  const int ca = category(a);
  const int cb = category(b);
  if (ca != cb) return ca > cb ? a : b;
  if (ca == 2) return (a == ScalarType::kDouble || b == ScalarType::kDouble) ? ScalarType::kDouble : ScalarType::kFloat;
  // Integral: uint8 with a signed type needs a signed type that holds 0..255.
  if (a == ScalarType::kByte || b == ScalarType::kByte) {
    const ScalarType other = a == ScalarType::kByte ? b : a;
    return other == ScalarType::kChar ? ScalarType::kShort : other;
  }
  return integer_bits(a) >= integer_bits(b) ? a : b;
}

ScalarType promote_type_with_scalar(ScalarType tensor_type, const Scalar& scalar) {
  const int scalar_category = scalar.is_floating() ? 2 : scalar.is_integral() ? 1 : 0;
  if (scalar_category <= category(tensor_type)) return tensor_type;
  return scalar_category == 2 ? ScalarType::kFloat : ScalarType::kLong;
}

bool can_cast(ScalarType from, ScalarType to) {
  if (is_floating_type(from) && is_integral_type(to, true)) return false;
  if (from != ScalarType::kBool && to == ScalarType::kBool) return false;
  return true;
}

Status unsupported_dtype(std::string_view op, std::string_view arg, ScalarType type) {
  return error(ErrorCode::kUnsupportedDtype, op, ": argument '", arg, "' has unsupported dtype ",
               dtype_name(type));
}

namespace {

template <typename From>
void convert_from(const From* src, void* dst, ScalarType dst_type, size_t count) {
  auto run = [&]<typename To>() {
    To* out = static_cast<To*>(dst);
    for (size_t i = 0; i < count; ++i) out[i] = cast_value<To>(src[i]);
    return Status::Ok();
  };
  (void)dispatch<DtypeSet::kAll>(dst_type, "convert", "destination", run);
}

}  // namespace

void convert_elements(const void* src, ScalarType src_type, void* dst, ScalarType dst_type,
                      size_t count) {
  if (count == 0) return;
  if (src_type == dst_type) {
    if (src != dst) std::memmove(dst, src, count * element_size(src_type));
    return;
  }
  (void)dispatch<DtypeSet::kAll>(src_type, "convert", "source", [&]<typename From>() {
    convert_from(static_cast<const From*>(src), dst, dst_type, count);
    return Status::Ok();
  });
}

// ---------------------------------------------------------------------------------------
// Arguments

Status Args::check_count(size_t schema_args, size_t returns) const {
  if (values_.size() == schema_args || values_.size() == schema_args + returns) return Status::Ok();
  return error(ErrorCode::kKernelFailed, op_, ": expected ", schema_args, " arguments (or ",
               schema_args + returns, " with return values), got ", values_.size());
}

Status Args::fail(std::string_view arg, const std::string& problem) const {
  return error(ErrorCode::kKernelFailed, op_, ": argument '", arg, "' ", problem);
}

Result<const EValue*> Args::value(size_t index, std::string_view name) const {
  if (index >= values_.size() || values_[index] == nullptr) {
    return fail(name, "is missing");
  }
  return static_cast<const EValue*>(values_[index]);
}

Status Args::check_input_tensor(const Tensor& tensor, std::string_view name) const {
  if (!is_supported_dtype(tensor.dtype)) return unsupported_dtype(op_, name, tensor.dtype);
  const int64_t numel = checked_numel(tensor.sizes);
  if (numel < 0) return fail(name, "has invalid sizes " + shape_to_string(tensor.sizes));
  if (tensor.dim_order.size() != tensor.sizes.size()) {
    return fail(name, "has a dim order of a different rank than its sizes");
  }
  const size_t bytes = static_cast<size_t>(numel) * element_size(tensor.dtype);
  if (bytes > 0 && (tensor.data == nullptr || bytes > tensor.capacity)) {
    return fail(name, "has no data for its " + std::to_string(numel) + " elements");
  }
  return Status::Ok();
}

Result<Tensor*> Args::tensor(size_t index, std::string_view name) const {
  EI_ASSIGN_OR_RETURN(const EValue* v, value(index, name));
  if (!v->is_tensor() || v->tensor == nullptr) {
    return fail(name, std::string("must be a Tensor, got ") + tag_name(v->tag));
  }
  EI_RETURN_IF_ERROR(check_input_tensor(*v->tensor, name));
  return v->tensor;
}

Result<Tensor*> Args::optional_tensor(size_t index, std::string_view name) const {
  EI_ASSIGN_OR_RETURN(const EValue* v, value(index, name));
  if (v->is_none()) return static_cast<Tensor*>(nullptr);
  return tensor(index, name);
}

Result<Tensor*> Args::out_tensor(size_t index, std::string_view name) const {
  EI_ASSIGN_OR_RETURN(const EValue* v, value(index, name));
  if (!v->is_tensor() || v->tensor == nullptr) {
    return fail(name, std::string("must be a Tensor, got ") + tag_name(v->tag));
  }
  if (!is_supported_dtype(v->tensor->dtype)) return unsupported_dtype(op_, name, v->tensor->dtype);
  if (v->tensor->is_constant) return fail(name, "is constant data and cannot be written");
  return v->tensor;
}

Result<std::vector<Tensor*>> Args::tensor_list(size_t index, std::string_view name) const {
  EI_ASSIGN_OR_RETURN(const EValue* v, value(index, name));
  if (v->tag != Tag::kTensorList) {
    return fail(name, std::string("must be a TensorList, got ") + tag_name(v->tag));
  }
  std::vector<Tensor*> tensors;
  tensors.reserve(v->items.size());
  for (size_t i = 0; i < v->items.size(); ++i) {
    const EValue* item = v->items[i];
    const std::string item_name = std::string(name) + "[" + std::to_string(i) + "]";
    if (item == nullptr || !item->is_tensor() || item->tensor == nullptr) {
      return fail(item_name, "must be a Tensor");
    }
    tensors.push_back(item->tensor);
  }
  return tensors;
}

Result<std::vector<Tensor*>> Args::optional_tensor_list(size_t index, std::string_view name) const {
  EI_ASSIGN_OR_RETURN(const EValue* v, value(index, name));
  if (v->tag != Tag::kOptionalTensorList && v->tag != Tag::kTensorList) {
    return fail(name, std::string("must be an OptionalTensorList, got ") + tag_name(v->tag));
  }
  std::vector<Tensor*> tensors;
  tensors.reserve(v->items.size());
  for (size_t i = 0; i < v->items.size(); ++i) {
    const EValue* item = v->items[i];
    if (item == nullptr || item->is_none()) {
      tensors.push_back(nullptr);
      continue;
    }
    const std::string item_name = std::string(name) + "[" + std::to_string(i) + "]";
    if (!item->is_tensor() || item->tensor == nullptr) return fail(item_name, "must be a Tensor or None");
    EI_RETURN_IF_ERROR(check_input_tensor(*item->tensor, item_name));
    tensors.push_back(item->tensor);
  }
  return tensors;
}

Result<Scalar> Args::scalar(size_t index, std::string_view name) const {
  EI_ASSIGN_OR_RETURN(const EValue* v, value(index, name));
  Scalar s;
  s.tag = v->tag;
  switch (v->tag) {
    case Tag::kInt: s.int_value = v->int_value; return s;
    case Tag::kDouble: s.double_value = v->double_value; return s;
    case Tag::kBool: s.bool_value = v->bool_value; return s;
    default: return fail(name, std::string("must be a Scalar (Int, Double or Bool), got ") + tag_name(v->tag));
  }
}

Result<std::optional<Scalar>> Args::optional_scalar(size_t index, std::string_view name) const {
  EI_ASSIGN_OR_RETURN(const EValue* v, value(index, name));
  if (v->is_none()) return std::optional<Scalar>();
  EI_ASSIGN_OR_RETURN(Scalar s, scalar(index, name));
  return std::optional<Scalar>(s);
}

Result<int64_t> Args::int_value(size_t index, std::string_view name) const {
  EI_ASSIGN_OR_RETURN(const EValue* v, value(index, name));
  if (v->tag != Tag::kInt) return fail(name, std::string("must be an Int, got ") + tag_name(v->tag));
  return v->int_value;
}

Result<std::optional<int64_t>> Args::optional_int(size_t index, std::string_view name) const {
  EI_ASSIGN_OR_RETURN(const EValue* v, value(index, name));
  if (v->is_none()) return std::optional<int64_t>();
  if (v->tag != Tag::kInt) return fail(name, std::string("must be an Int or None, got ") + tag_name(v->tag));
  return std::optional<int64_t>(v->int_value);
}

Result<bool> Args::bool_value(size_t index, std::string_view name) const {
  EI_ASSIGN_OR_RETURN(const EValue* v, value(index, name));
  if (v->tag != Tag::kBool) return fail(name, std::string("must be a Bool, got ") + tag_name(v->tag));
  return v->bool_value;
}

Result<double> Args::double_value(size_t index, std::string_view name) const {
  EI_ASSIGN_OR_RETURN(const EValue* v, value(index, name));
  // A float argument may be serialized as an Int when its value is integral.
  if (v->tag == Tag::kDouble) return v->double_value;
  if (v->tag == Tag::kInt) return static_cast<double>(v->int_value);
  return fail(name, std::string("must be a Double, got ") + tag_name(v->tag));
}

Result<std::vector<int64_t>> Args::int_list(size_t index, std::string_view name) const {
  EI_ASSIGN_OR_RETURN(const EValue* v, value(index, name));
  Result<std::vector<int64_t>> list = v->to_int_list();
  if (!list.ok()) return fail(name, std::string("must be an IntList, got ") + tag_name(v->tag));
  return list;
}

Result<std::optional<std::vector<int64_t>>> Args::optional_int_list(size_t index,
                                                                    std::string_view name) const {
  EI_ASSIGN_OR_RETURN(const EValue* v, value(index, name));
  if (v->is_none()) return std::optional<std::vector<int64_t>>();
  EI_ASSIGN_OR_RETURN(std::vector<int64_t> list, int_list(index, name));
  return std::optional<std::vector<int64_t>>(std::move(list));
}

Result<std::optional<std::vector<double>>> Args::optional_double_list(size_t index,
                                                                      std::string_view name) const {
  EI_ASSIGN_OR_RETURN(const EValue* v, value(index, name));
  if (v->is_none()) return std::optional<std::vector<double>>();
  if (v->tag != Tag::kDoubleList) {
    return fail(name, std::string("must be a DoubleList or None, got ") + tag_name(v->tag));
  }
  return std::optional<std::vector<double>>(v->double_items);
}

Result<std::optional<std::string_view>> Args::optional_string(size_t index,
                                                              std::string_view name) const {
  EI_ASSIGN_OR_RETURN(const EValue* v, value(index, name));
  if (v->is_none()) return std::optional<std::string_view>();
  if (v->tag != Tag::kString) return fail(name, std::string("must be a String or None, got ") + tag_name(v->tag));
  return std::optional<std::string_view>(v->string_value);
}

Result<std::optional<ScalarType>> Args::optional_dtype(size_t index, std::string_view name) const {
  EI_ASSIGN_OR_RETURN(std::optional<int64_t> code, optional_int(index, name));
  if (!code) return std::optional<ScalarType>();
  if (*code < 0 || *code > 127 || !is_supported_dtype(static_cast<ScalarType>(*code))) {
    return error(ErrorCode::kUnsupportedDtype, op_, ": argument '", name,
                 "' names unsupported dtype ", dtype_name(static_cast<ScalarType>(*code & 0x7f)),
                 " (", *code, ")");
  }
  return std::optional<ScalarType>(static_cast<ScalarType>(*code));
}

// ---------------------------------------------------------------------------------------
// Shapes and layout

Result<int64_t> wrap_dim(const Args& args, std::string_view name, int64_t dim, int64_t rank) {
  const int64_t effective = rank == 0 ? 1 : rank;
  if (dim < -effective || dim >= effective) {
    return args.fail(name, "is " + std::to_string(dim) + ", out of range for a tensor of rank " +
                               std::to_string(rank));
  }
  return dim < 0 ? dim + effective : dim;
}

std::vector<int64_t> strides_for(std::span<const int64_t> sizes, std::span<const uint8_t> dim_order) {
  std::vector<int64_t> strides(sizes.size(), 1);
  int64_t step = 1;
  for (size_t j = dim_order.size(); j-- > 0;) {
    const size_t d = dim_order[j];
    if (d >= strides.size()) continue;
    strides[d] = step;
    step *= std::max<int64_t>(sizes[d], 1);
  }
  return strides;
}

std::vector<int64_t> contiguous_strides(std::span<const int64_t> sizes) {
  std::vector<int64_t> strides(sizes.size(), 1);
  int64_t step = 1;
  for (size_t d = sizes.size(); d-- > 0;) {
    strides[d] = step;
    step *= std::max<int64_t>(sizes[d], 1);
  }
  return strides;
}

Status require_default_dim_order(const Args& args, const Tensor& tensor, std::string_view name) {
  if (tensor.has_default_dim_order()) return Status::Ok();
  return args.fail(name, "must have the default (contiguous) dim order");
}

Status resize_output(const Args& args, Tensor& out, std::span<const int64_t> sizes,
                     std::string_view name) {
  if (checked_numel(sizes) < 0) {
    return args.fail(name, "would get invalid sizes " + shape_to_string(sizes));
  }
  if (out.sizes.size() != sizes.size()) {
    return args.fail(name, "has rank " + std::to_string(out.sizes.size()) + " but the result has shape " +
                               shape_to_string(sizes));
  }
  Status status = out.resize(sizes);
  if (!status.ok()) {
    return status.with_context(std::string(args.op()) + ": argument '" + std::string(name) +
                               "' cannot hold the result of shape " + shape_to_string(sizes) + ": ");
  }
  if (out.nbytes() > 0 && (out.data == nullptr || out.nbytes() > out.capacity)) {
    return args.fail(name, "has no memory for " + std::to_string(out.numel()) + " elements");
  }
  return Status::Ok();
}

Result<std::vector<int64_t>> broadcast_shapes(const Args& args, std::span<const int64_t> a,
                                              std::span<const int64_t> b) {
  const size_t rank = std::max(a.size(), b.size());
  std::vector<int64_t> shape(rank, 1);
  for (size_t j = 0; j < rank; ++j) {
    const int64_t sa = j < a.size() ? a[a.size() - 1 - j] : 1;
    const int64_t sb = j < b.size() ? b[b.size() - 1 - j] : 1;
    if (sa != sb && sa != 1 && sb != 1) {
      return error(ErrorCode::kKernelFailed, args.op(), ": shapes ", shape_to_string(a), " and ",
                   shape_to_string(b), " cannot be broadcast together");
    }
    shape[rank - 1 - j] = sa == 1 ? sb : sa;
  }
  return shape;
}

bool ranges_overlap(const void* a, size_t a_bytes, const void* b, size_t b_bytes) {
  if (a_bytes == 0 || b_bytes == 0 || a == nullptr || b == nullptr) return false;
  const auto pa = reinterpret_cast<uintptr_t>(a);
  const auto pb = reinterpret_cast<uintptr_t>(b);
  return pa < pb + b_bytes && pb < pa + a_bytes;
}

bool tensors_overlap(const Tensor& a, const Tensor& b) {
  return ranges_overlap(a.data, a.nbytes(), b.data, b.nbytes());
}

int64_t shape_numel(std::span<const int64_t> sizes) {
  int64_t n = 1;
  for (int64_t s : sizes) n *= s;
  return n;
}

std::string shape_to_string(std::span<const int64_t> sizes) {
  std::ostringstream out;
  out << "[";
  for (size_t i = 0; i < sizes.size(); ++i) out << (i ? ", " : "") << sizes[i];
  out << "]";
  return out.str();
}

OverlapGuard::OverlapGuard(const Tensor& input, const Tensor& out) : data_(input.data) {
  if (!tensors_overlap(input, out)) return;
  const size_t bytes = input.nbytes();
  copy_ = std::make_unique<std::byte[]>(bytes);
  std::memcpy(copy_.get(), input.data, bytes);
  data_ = copy_.get();
}

namespace {

template <size_t kBytes>
void strided_copy_typed(const std::byte* src, std::span<const int64_t> src_strides, int64_t src_offset,
                        std::byte* dst, std::span<const int64_t> dst_strides, std::span<const int64_t> sizes) {
  const size_t rank = sizes.size();
  const int64_t numel = shape_numel(sizes);
  if (numel <= 0) return;
  if (rank == 0) {
    std::memcpy(dst, src + src_offset * kBytes, kBytes);
    return;
  }
  const int64_t inner = sizes[rank - 1];
  const int64_t src_inner = src_strides[rank - 1];
  const int64_t dst_inner = dst_strides[rank - 1];
  std::vector<int64_t> counter(rank, 0);
  int64_t src_pos = src_offset;
  int64_t dst_pos = 0;
  for (int64_t done = 0; done < numel; done += inner) {
    if (src_inner == 1 && dst_inner == 1) {
      std::memcpy(dst + dst_pos * kBytes, src + src_pos * kBytes, static_cast<size_t>(inner) * kBytes);
    } else {
      for (int64_t j = 0; j < inner; ++j) {
        std::memcpy(dst + (dst_pos + j * dst_inner) * kBytes, src + (src_pos + j * src_inner) * kBytes, kBytes);
      }
    }
    for (size_t d = rank - 1; d-- > 0;) {
      ++counter[d];
      src_pos += src_strides[d];
      dst_pos += dst_strides[d];
      if (counter[d] < sizes[d]) break;
      src_pos -= src_strides[d] * sizes[d];
      dst_pos -= dst_strides[d] * sizes[d];
      counter[d] = 0;
    }
  }
}

}  // namespace

void strided_copy(const void* src, std::span<const int64_t> src_strides, int64_t src_offset, void* dst,
                  std::span<const int64_t> dst_strides, std::span<const int64_t> sizes, size_t element_bytes) {
  const auto* s = static_cast<const std::byte*>(src);
  auto* d = static_cast<std::byte*>(dst);
  switch (element_bytes) {
    case 1: return strided_copy_typed<1>(s, src_strides, src_offset, d, dst_strides, sizes);
    case 2: return strided_copy_typed<2>(s, src_strides, src_offset, d, dst_strides, sizes);
    case 4: return strided_copy_typed<4>(s, src_strides, src_offset, d, dst_strides, sizes);
    case 8: return strided_copy_typed<8>(s, src_strides, src_offset, d, dst_strides, sizes);
    default: return;
  }
}

void copy_between_layouts(const Tensor& input, Tensor& out) {
  OverlapGuard source(input, out);
  const std::vector<int64_t> src_strides = strides_for(input.sizes, input.dim_order);
  const std::vector<int64_t> dst_strides = strides_for(out.sizes, out.dim_order);
  strided_copy(source.data(), src_strides, 0, out.data, dst_strides, input.sizes, element_size(input.dtype));
}

Status check_elementwise_layout(const Args& args, std::span<const Tensor* const> inputs,
                                std::span<const std::string_view> names, const Tensor& out) {
  bool all_default = out.has_default_dim_order();
  for (const Tensor* t : inputs) all_default = all_default && t->has_default_dim_order();
  if (all_default) return Status::Ok();
  // Without the default dim order the kernels iterate memory linearly, which is right only
  // when every full-size input has out's dim order and all full-size inputs share one shape.
  const Tensor* reference = nullptr;
  for (size_t k = 0; k < inputs.size(); ++k) {
    const Tensor& t = *inputs[k];
    if (t.numel() == 1) continue;  // a single element broadcasts the same way in every layout
    if (reference == nullptr) reference = &t;
    if (t.dim_order != out.dim_order || t.sizes != reference->sizes) {
      return args.fail(names[k], "has a dim order other than out's or is broadcast in a "
                                 "non-default dim order, which is not supported");
    }
  }
  return Status::Ok();
}

}  // namespace ei::kernels
