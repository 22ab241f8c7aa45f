// Error values of the runtime core. The core never throws: every fallible function returns
// a Status or a Result<T>, and only the Node-API layer turns a failed one into a JS Error
// whose `code` property is error_code_name(code).
#pragma once

#include <cstdint>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <variant>

namespace ei {

enum class ErrorCode : uint8_t {
  kOk = 0,
  kFileNotFound,         // ERR_FILE_NOT_FOUND
  kFileRead,             // ERR_FILE_READ: open, stat, mmap or read failed
  kTruncated,            // ERR_PTE_TRUNCATED: the data ends before a structure it declares
  kBadIdentifier,        // ERR_PTE_IDENTIFIER: not an ET12 flatbuffer
  kBadHeader,            // ERR_PTE_HEADER: invalid eh00 extended header
  kVerifyFailed,         // ERR_PTE_VERIFY: the flatbuffers Verifier rejected the program
  kMalformed,            // ERR_PTE_MALFORMED: an index, offset or size out of range
  kExternalData,         // ERR_PTE_EXTERNAL_DATA: tensors stored in a separate .ptd file
  kUnsupportedOperator,  // ERR_UNSUPPORTED_OPERATOR
  kUnsupportedBackend,   // ERR_UNSUPPORTED_BACKEND
  kUnsupportedDtype,     // ERR_UNSUPPORTED_DTYPE
  kMethodNotFound,       // ERR_METHOD_NOT_FOUND
  kInvalidInput,         // ERR_INVALID_INPUT: wrong count, dtype or shape of method inputs
  kKernelFailed,         // ERR_KERNEL: an operator rejected its arguments while running
  kDelegateFailed,       // ERR_DELEGATE: a backend rejected its payload or failed to run
  kExecutionLimit,       // ERR_EXECUTION_LIMIT: too many instructions (for example cyclic jumps)
  kOutOfMemory,          // ERR_OUT_OF_MEMORY: a declared size above the allowed maximum
  kInvalidArgument,      // ERR_INVALID_ARGUMENT: a bad option or argument to the API
  kDisposed,             // ERR_DISPOSED: the program was disposed
  kInternal,             // ERR_INTERNAL: a bug in embed-image
};

const char* error_code_name(ErrorCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == ErrorCode::kOk; }
  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // Prefixes the message with context such as "method 'forward': ".
  Status with_context(const std::string& context) const {
    return ok() ? *this : Status(code_, context + message_);
  }

 private:
  ErrorCode code_ = ErrorCode::kOk;
  std::string message_;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Status status) : status_(std::move(status)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() & { return *value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

// Builds a Status from the streamed parts: error(ErrorCode::kMalformed, "index ", i, " out of range").
template <typename... Parts>
Status error(ErrorCode code, const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return Status(code, out.str());
}

}  // namespace ei

#define EI_CONCAT_INNER(a, b) a##b
#define EI_CONCAT(a, b) EI_CONCAT_INNER(a, b)

// Returns the Status from the enclosing function when `expr` (a Status) failed.
#define EI_RETURN_IF_ERROR(expr)                \
  do {                                          \
    ::ei::Status ei_status_ = (expr);           \
    if (!ei_status_.ok()) return ei_status_;    \
  } while (0)

// Evaluates `expr` (a Result<T>); on failure returns its Status, else moves the value into `lhs`.
#define EI_ASSIGN_OR_RETURN(lhs, expr) EI_ASSIGN_OR_RETURN_IMPL(EI_CONCAT(ei_result_, __LINE__), lhs, expr)
#define EI_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                             \
  if (!tmp.ok()) return tmp.status();            \
  lhs = std::move(tmp).value()

// Returns an error Status when `cond` is false.
#define EI_CHECK_OR_RETURN(cond, code, ...)                \
  do {                                                     \
    if (!(cond)) return ::ei::error((code), __VA_ARGS__);  \
  } while (0)
