#include "runtime/status.h"

namespace ei {

const char* error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk: return "OK";
    case ErrorCode::kFileNotFound: return "ERR_FILE_NOT_FOUND";
    case ErrorCode::kFileRead: return "ERR_FILE_READ";
    case ErrorCode::kTruncated: return "ERR_PTE_TRUNCATED";
    case ErrorCode::kBadIdentifier: return "ERR_PTE_IDENTIFIER";
    case ErrorCode::kBadHeader: return "ERR_PTE_HEADER";
    case ErrorCode::kVerifyFailed: return "ERR_PTE_VERIFY";
    case ErrorCode::kMalformed: return "ERR_PTE_MALFORMED";
    case ErrorCode::kExternalData: return "ERR_PTE_EXTERNAL_DATA";
    case ErrorCode::kUnsupportedOperator: return "ERR_UNSUPPORTED_OPERATOR";
    case ErrorCode::kUnsupportedBackend: return "ERR_UNSUPPORTED_BACKEND";
    case ErrorCode::kUnsupportedDtype: return "ERR_UNSUPPORTED_DTYPE";
    case ErrorCode::kMethodNotFound: return "ERR_METHOD_NOT_FOUND";
    case ErrorCode::kInvalidInput: return "ERR_INVALID_INPUT";
    case ErrorCode::kKernelFailed: return "ERR_KERNEL";
    case ErrorCode::kDelegateFailed: return "ERR_DELEGATE";
    case ErrorCode::kExecutionLimit: return "ERR_EXECUTION_LIMIT";
    case ErrorCode::kOutOfMemory: return "ERR_OUT_OF_MEMORY";
    case ErrorCode::kInvalidArgument: return "ERR_INVALID_ARGUMENT";
    case ErrorCode::kDisposed: return "ERR_DISPOSED";
    case ErrorCode::kInternal: return "ERR_INTERNAL";
  }
  return "ERR_INTERNAL";
}

}  // namespace ei
