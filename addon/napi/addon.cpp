// The Node-API surface of the runtime. Loading and execution run in Napi::AsyncWorker
// threads, never on the JS thread; failed Status values become JS Errors with a `code`.
#include <napi.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <chrono>
#include <thread>
#include <vector>

#include "program_generated.h"
#include "backends/blas.h"
#include "backends/packed_gemm.h"
#include "napi/preprocess.h"
#include "napi/promise_worker.h"
#include "runtime/backend.h"
#include "runtime/kernel.h"
#include "runtime/program.h"

namespace {

using ei::ErrorCode;
using ei::IoValue;
using ei::ScalarType;
using ei::Status;
using ei::Tag;

Napi::Error make_error(Napi::Env env, const Status& status) {
  Napi::Error error = Napi::Error::New(env, status.message());
  error.Set("code", Napi::String::New(env, ei::error_code_name(status.code())));
  return error;
}

Napi::Error make_error(Napi::Env env, ErrorCode code, const std::string& message) {
  return make_error(env, Status(code, message));
}

const char* dynamism_name(ei::ShapeDynamism dynamism) {
  switch (dynamism) {
    case ei::ShapeDynamism::kStatic: return "static";
    case ei::ShapeDynamism::kDynamicBound: return "dynamic_bound";
    case ei::ShapeDynamism::kDynamicUnbound: return "dynamic_unbound";
  }
  return "static";
}

std::string kind_name(Tag tag) {
  switch (tag) {
    case Tag::kNone: return "none";
    case Tag::kInt: return "int";
    case Tag::kDouble: return "double";
    case Tag::kBool: return "bool";
    case Tag::kString: return "string";
    case Tag::kTensor: return "tensor";
    case Tag::kTensorList: return "tensor_list";
    case Tag::kIntList: return "int_list";
    case Tag::kDoubleList: return "double_list";
    case Tag::kBoolList: return "bool_list";
    case Tag::kOptionalTensorList: return "optional_tensor_list";
  }
  return "none";
}

bool dtype_from_name(const std::string& name, ScalarType& type) {
  static const std::pair<const char*, ScalarType> kNames[] = {
      {"float32", ScalarType::kFloat}, {"float64", ScalarType::kDouble}, {"int64", ScalarType::kLong},
      {"int32", ScalarType::kInt},     {"int16", ScalarType::kShort},    {"int8", ScalarType::kChar},
      {"uint8", ScalarType::kByte},    {"bool", ScalarType::kBool},
  };
  for (const auto& [text, value] : kNames) {
    if (name == text) {
      type = value;
      return true;
    }
  }
  return false;
}

Napi::Array to_js_numbers(Napi::Env env, const std::vector<int64_t>& values) {
  Napi::Array array = Napi::Array::New(env, values.size());
  for (size_t i = 0; i < values.size(); ++i) array.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(values[i])));
  return array;
}

Napi::Object meta_to_js(Napi::Env env, const ei::ValueMeta& meta) {
  Napi::Object object = Napi::Object::New(env);
  object.Set("kind", kind_name(meta.tag));
  if (meta.tag == Tag::kTensor) {
    object.Set("dtype", ei::dtype_name(meta.dtype));
    object.Set("shape", to_js_numbers(env, meta.sizes));
    std::vector<int64_t> order(meta.dim_order.begin(), meta.dim_order.end());
    object.Set("dimOrder", to_js_numbers(env, order));
    object.Set("dynamism", dynamism_name(meta.dynamism));
  }
  return object;
}

// Memory for the tensor bytes of call inputs, reused from call to call of one program. A
// ViT-B/32 image is 588 KiB, and fresh memory for each call cost about 150 page faults. They
// fall on the JS thread between one batch and the next, while the cores wait. With 8
// concurrent calls (batches of 8 back to back), reusing the memory gave 2-3 % more images per
// second (2-core AMD EPYC, 2026-12-05). Buffers return here when the call's inputs are
// released, and the pool keeps the latest kMaxKept of them, kMaxKeptBytes in all, until the
// program is disposed. Inputs under kSmallest bytes get fresh memory each time.
class InputBuffers : public std::enable_shared_from_this<InputBuffers> {
 public:
  static constexpr size_t kAlignment = 64;
  static constexpr size_t kSmallest = size_t{64} << 10;
  static constexpr size_t kMaxKept = 32;
  static constexpr size_t kMaxKeptBytes = size_t{64} << 20;

  InputBuffers() = default;
  InputBuffers(const InputBuffers&) = delete;
  InputBuffers& operator=(const InputBuffers&) = delete;
  ~InputBuffers() {
    for (const auto& [capacity, memory] : free_) std::free(memory);
  }

  // Memory for `bytes` bytes (at least 1), 64-byte aligned, or null when memory is short. The
  // caller writes the first `bytes`; the rest of the last 64-byte line is zeroed here.
  std::shared_ptr<std::byte[]> take(size_t bytes) {
    size_t capacity = std::max<size_t>(kAlignment, (bytes + kAlignment - 1) / kAlignment * kAlignment);
    if (capacity < bytes) return nullptr;
    if (capacity < kSmallest) return ei::allocate_aligned(std::max<size_t>(bytes, 1));
    std::byte* memory = nullptr;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto match = std::find_if(free_.begin(), free_.end(), [&](const auto& entry) { return entry.first == capacity; });
      if (match != free_.end()) {
        memory = match->second;
        free_bytes_ -= match->first;
        free_.erase(match);
      }
    }
    if (memory == nullptr) memory = static_cast<std::byte*>(std::aligned_alloc(kAlignment, capacity));
    if (memory == nullptr) return nullptr;
    std::memset(memory + bytes, 0, capacity - bytes);
    std::weak_ptr<InputBuffers> owner = weak_from_this();
    return std::shared_ptr<std::byte[]>(memory, [owner, capacity](std::byte* p) {
      if (auto pool = owner.lock()) {
        pool->give_back(p, capacity);
      } else {
        std::free(p);
      }
    });
  }

  // Frees every kept buffer when the program is disposed. Buffers still in use are freed when
  // they come back.
  void close() {
    std::vector<std::pair<size_t, std::byte*>> freed;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      closed_ = true;
      freed.swap(free_);
      free_bytes_ = 0;
    }
    for (const auto& [capacity, memory] : freed) std::free(memory);
  }

 private:
  // Keeps a released buffer, dropping the oldest kept ones when the pool is full, so that
  // buffers of a size the calls no longer use give way to those of the sizes in use.
  void give_back(std::byte* memory, size_t capacity) {
    std::vector<std::byte*> dropped;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (closed_ || capacity > kMaxKeptBytes) {
        dropped.push_back(memory);
      } else {
        while (!free_.empty() && (free_.size() >= kMaxKept || capacity > kMaxKeptBytes - free_bytes_)) {
          free_bytes_ -= free_.front().first;
          dropped.push_back(free_.front().second);
          free_.erase(free_.begin());
        }
        free_.emplace_back(capacity, memory);
        free_bytes_ += capacity;
      }
    }
    for (std::byte* buffer : dropped) std::free(buffer);
  }

  std::mutex mutex_;
  std::vector<std::pair<size_t, std::byte*>> free_;  // capacity, memory
  size_t free_bytes_ = 0;                             // sum of the capacities in free_
  bool closed_ = false;                               // set by close(): keep nothing more
};

// Converts one JS input to an IoValue, copying tensor bytes (into memory from `buffers`) so
// the worker thread owns them.
bool js_to_io(Napi::Env env, const Napi::Value& value, size_t index, InputBuffers& buffers, IoValue& out) {
  auto fail = [&](const std::string& message) {
    make_error(env, ErrorCode::kInvalidInput, "input " + std::to_string(index) + ": " + message).ThrowAsJavaScriptException();
    return false;
  };
  if (value.IsNull() || value.IsUndefined()) {
    out.tag = Tag::kNone;
    return true;
  }
  if (value.IsBoolean()) {
    out.tag = Tag::kBool;
    out.bool_value = value.As<Napi::Boolean>().Value();
    return true;
  }
  if (value.IsBigInt()) {
    bool lossless = false;
    out.tag = Tag::kInt;
    out.int_value = value.As<Napi::BigInt>().Int64Value(&lossless);
    if (!lossless) return fail("bigint does not fit in int64");
    return true;
  }
  if (value.IsNumber()) {
    double number = value.As<Napi::Number>().DoubleValue();
    if (std::isfinite(number) && number == static_cast<double>(static_cast<int64_t>(number)) &&
        std::abs(number) <= 9007199254740992.0) {
      out.tag = Tag::kInt;
      out.int_value = static_cast<int64_t>(number);
      out.double_value = number;
    } else {
      out.tag = Tag::kDouble;
      out.double_value = number;
    }
    return true;
  }
  if (!value.IsObject()) return fail("expected a tensor object, a number, a bigint, a boolean or null");

  Napi::Object object = value.As<Napi::Object>();
  Napi::Value dtype = object.Get("dtype");
  Napi::Value shape = object.Get("shape");
  Napi::Value data = object.Get("data");
  if (!dtype.IsString() || !shape.IsArray() || !data.IsTypedArray()) {
    return fail("a tensor needs dtype (string), shape (array) and data (TypedArray)");
  }
  out.tag = Tag::kTensor;
  if (!dtype_from_name(dtype.As<Napi::String>().Utf8Value(), out.dtype)) {
    return fail("unsupported dtype '" + dtype.As<Napi::String>().Utf8Value() + "'");
  }
  Napi::Array dims = shape.As<Napi::Array>();
  if (dims.Length() > ei::kMaxRank) return fail("rank above " + std::to_string(ei::kMaxRank));
  for (uint32_t d = 0; d < dims.Length(); ++d) {
    Napi::Value size = dims.Get(d);
    if (!size.IsNumber()) return fail("shape entries must be numbers");
    double number = size.As<Napi::Number>().DoubleValue();
    if (!(number >= 0) || number != static_cast<double>(static_cast<int64_t>(number)) || number > 9007199254740992.0) {
      return fail("shape entries must be non-negative integers");
    }
    out.sizes.push_back(static_cast<int64_t>(number));
  }
  int64_t numel = ei::checked_numel(out.sizes);
  if (numel < 0) return fail("shape is too large");
  Napi::TypedArray array = data.As<Napi::TypedArray>();
  size_t expected = static_cast<size_t>(numel) * ei::element_size(out.dtype);
  if (array.ByteLength() != expected) {
    return fail("data has " + std::to_string(array.ByteLength()) + " bytes but dtype " + ei::dtype_name(out.dtype) +
                " and the shape need " + std::to_string(expected));
  }
  out.nbytes = expected;
  out.bytes = buffers.take(expected);
  if (!out.bytes) return fail("cannot allocate " + std::to_string(expected) + " bytes");
  if (expected > 0) {
    const uint8_t* base = static_cast<const uint8_t*>(array.ArrayBuffer().Data()) + array.ByteOffset();
    std::memcpy(out.bytes.get(), base, expected);
  }
  return true;
}

Napi::Value io_to_js(Napi::Env env, const IoValue& value) {
  switch (value.tag) {
    case Tag::kNone: return env.Null();
    case Tag::kBool: return Napi::Boolean::New(env, value.bool_value);
    case Tag::kDouble: return Napi::Number::New(env, value.double_value);
    case Tag::kString: return Napi::String::New(env, value.string_value);
    case Tag::kInt:
      if (value.int_value >= -9007199254740991LL && value.int_value <= 9007199254740991LL) {
        return Napi::Number::New(env, static_cast<double>(value.int_value));
      }
      return Napi::BigInt::New(env, value.int_value);
    case Tag::kTensor: break;
    default: return env.Null();
  }
  Napi::ArrayBuffer buffer = Napi::ArrayBuffer::New(env, value.nbytes);
  if (value.nbytes > 0) std::memcpy(buffer.Data(), value.bytes.get(), value.nbytes);
  size_t count = value.nbytes / ei::element_size(value.dtype);
  Napi::Value data;
  switch (value.dtype) {
    case ScalarType::kFloat: data = Napi::Float32Array::New(env, count, buffer, 0); break;
    case ScalarType::kDouble: data = Napi::Float64Array::New(env, count, buffer, 0); break;
    case ScalarType::kLong: data = Napi::BigInt64Array::New(env, count, buffer, 0); break;
    case ScalarType::kInt: data = Napi::Int32Array::New(env, count, buffer, 0); break;
    case ScalarType::kShort: data = Napi::Int16Array::New(env, count, buffer, 0); break;
    case ScalarType::kChar: data = Napi::Int8Array::New(env, count, buffer, 0); break;
    default: data = Napi::Uint8Array::New(env, count, buffer, 0); break;
  }
  Napi::Object tensor = Napi::Object::New(env);
  tensor.Set("dtype", ei::dtype_name(value.dtype));
  tensor.Set("shape", to_js_numbers(env, value.sizes));
  tensor.Set("data", data);
  return tensor;
}

class ProgramWrap : public Napi::ObjectWrap<ProgramWrap> {
 public:
  // Defines the NativeProgram class in `env`. Each environment (the main thread and every
  // worker thread that loads the addon) keeps its own constructor as its instance data, which
  // Node-API frees when that environment ends.
  static void Init(Napi::Env env) {
    Napi::Function function = DefineClass(env, "NativeProgram",
                                          {
                                              InstanceMethod("methodNames", &ProgramWrap::MethodNames),
                                              InstanceMethod("methodMeta", &ProgramWrap::MethodMeta),
                                              InstanceMethod("info", &ProgramWrap::Info),
                                              InstanceMethod("prepareInputs", &ProgramWrap::PrepareInputs),
                                              InstanceMethod("executeBatch", &ProgramWrap::ExecuteBatch),
                                              InstanceMethod("dispose", &ProgramWrap::Dispose),
                                          });
    env.SetInstanceData(new Napi::FunctionReference(Napi::Persistent(function)));
  }

  explicit ProgramWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ProgramWrap>(info) {}

  void set_program(std::shared_ptr<ei::Program> program) { program_ = std::move(program); }

 private:
  std::shared_ptr<ei::Program> require_program(Napi::Env env) {
    if (!program_) throw make_error(env, ErrorCode::kDisposed, "the program was disposed");
    return program_;
  }

  Napi::Value MethodNames(const Napi::CallbackInfo& info) {
    auto program = require_program(info.Env());
    auto names = program->method_names();
    Napi::Array array = Napi::Array::New(info.Env(), names.size());
    for (size_t i = 0; i < names.size(); ++i) array.Set(static_cast<uint32_t>(i), names[i]);
    return array;
  }

  Napi::Value MethodMeta(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto program = require_program(env);
    if (info.Length() < 1 || !info[0].IsString()) throw make_error(env, ErrorCode::kInvalidArgument, "method name must be a string");
    auto plan = program->method(info[0].As<Napi::String>().Utf8Value());
    if (!plan.ok()) throw make_error(env, plan.status());
    const ei::MethodPlan& method = *plan.value();

    Napi::Object meta = Napi::Object::New(env);
    meta.Set("name", method.name);
    Napi::Array inputs = Napi::Array::New(env, method.inputs.size());
    for (size_t i = 0; i < method.inputs.size(); ++i) inputs.Set(static_cast<uint32_t>(i), meta_to_js(env, method.inputs[i]));
    meta.Set("inputs", inputs);
    Napi::Array outputs = Napi::Array::New(env, method.outputs.size());
    for (size_t i = 0; i < method.outputs.size(); ++i) outputs.Set(static_cast<uint32_t>(i), meta_to_js(env, method.outputs[i]));
    meta.Set("outputs", outputs);

    std::vector<std::string> operators;
    for (const std::string& name : method.operator_names) {
      if (std::find(operators.begin(), operators.end(), name) == operators.end()) operators.push_back(name);
    }
    Napi::Array operator_array = Napi::Array::New(env, operators.size());
    for (size_t i = 0; i < operators.size(); ++i) operator_array.Set(static_cast<uint32_t>(i), operators[i]);
    meta.Set("operators", operator_array);
    std::vector<std::string> backends;
    for (const std::string& id : method.backend_ids) {
      if (std::find(backends.begin(), backends.end(), id) == backends.end()) backends.push_back(id);
    }
    Napi::Array backend_array = Napi::Array::New(env, backends.size());
    for (size_t i = 0; i < backends.size(); ++i) backend_array.Set(static_cast<uint32_t>(i), backends[i]);
    meta.Set("backends", backend_array);
    meta.Set("instructionCount", Napi::Number::New(env, static_cast<double>(method.instruction_count)));
    meta.Set("valueCount", Napi::Number::New(env, static_cast<double>(method.value_count)));
    std::vector<int64_t> arenas(method.arena_sizes.begin() + (method.arena_sizes.empty() ? 0 : 1), method.arena_sizes.end());
    meta.Set("plannedBufferSizes", to_js_numbers(env, arenas));
    Napi::Array problems = Napi::Array::New(env, method.problems.size());
    for (size_t i = 0; i < method.problems.size(); ++i) {
      Napi::Object problem = Napi::Object::New(env);
      problem.Set("code", ei::error_code_name(method.problems[i].code));
      problem.Set("message", method.problems[i].message);
      problems.Set(static_cast<uint32_t>(i), problem);
    }
    meta.Set("problems", problems);
    return meta;
  }

  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto program = require_program(env);
    const ei::ExtendedHeader& header = program->extended_header();
    Napi::Object object = Napi::Object::New(env);
    object.Set("fileSize", Napi::Number::New(env, static_cast<double>(program->source().size())));
    object.Set("schemaVersion", Napi::Number::New(env, program->flatbuffer()->version()));
    object.Set("hasExtendedHeader", Napi::Boolean::New(env, header.present));
    object.Set("programSize", Napi::Number::New(env, static_cast<double>(program->program_size())));
    object.Set("segmentBaseOffset", Napi::Number::New(env, static_cast<double>(header.segment_base_offset)));
    object.Set("segmentDataSize", Napi::Number::New(env, static_cast<double>(header.segment_data_size)));
    const auto* segments = program->flatbuffer()->segments();
    size_t segment_count = segments == nullptr ? 0 : segments->size();
    Napi::Array segment_array = Napi::Array::New(env, segment_count);
    for (size_t i = 0; i < segment_count; ++i) {
      Napi::Object segment = Napi::Object::New(env);
      segment.Set("offset", Napi::Number::New(env, static_cast<double>(segments->Get(static_cast<uint32_t>(i))->offset())));
      segment.Set("size", Napi::Number::New(env, static_cast<double>(segments->Get(static_cast<uint32_t>(i))->size())));
      segment_array.Set(static_cast<uint32_t>(i), segment);
    }
    object.Set("segments", segment_array);
    const auto* inline_constants = program->flatbuffer()->constant_buffer();
    const auto* segment_constants = program->flatbuffer()->constant_segment();
    std::string storage = "none";
    if (inline_constants != nullptr && inline_constants->size() > 1) {
      storage = "inline";
    } else if (segment_constants != nullptr && segment_constants->offsets() != nullptr &&
               segment_constants->offsets()->size() > 1) {
      storage = "segment";
    }
    object.Set("constantStorage", storage);
    auto keys = program->named_data_keys();
    Napi::Array key_array = Napi::Array::New(env, keys.size());
    for (size_t i = 0; i < keys.size(); ++i) key_array.Set(static_cast<uint32_t>(i), keys[i]);
    object.Set("namedDataKeys", key_array);
    object.Set("mapped", Napi::Boolean::New(env, program->source().mapped()));
    return object;
  }

  Napi::Value PrepareInputs(const Napi::CallbackInfo& info);
  Napi::Value ExecuteBatch(const Napi::CallbackInfo& info);

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    // Workers in flight hold their own reference, so the program outlives them.
    program_.reset();
    buffers_->close();
    return info.Env().Undefined();
  }

  std::shared_ptr<ei::Program> program_;
  std::shared_ptr<InputBuffers> buffers_ = std::make_shared<InputBuffers>();
};

// Runs calls of one method together (Program::execute_batch). Resolves to an array with, per
// call, its array of outputs or the Error it failed with.
class ExecuteWorker : public ei::napi::PromiseWorker {
 public:
  ExecuteWorker(Napi::Env env, std::shared_ptr<ei::Program> program, std::string method,
                std::vector<std::vector<IoValue>> inputs)
      : ei::napi::PromiseWorker(env),
        program_(std::move(program)),
        method_(std::move(method)),
        inputs_(std::move(inputs)) {}

  void Execute() override {
    // The core reports errors as Status values; an exception here is an allocation failure or
    // a bug, and must not escape into the worker thread.
    try {
      results_ = program_->execute_batch(method_, inputs_);
    } catch (const std::bad_alloc&) {
      failure_ = Status(ErrorCode::kOutOfMemory, "method '" + method_ + "': out of memory");
    } catch (const std::exception& error) {
      failure_ = Status(ErrorCode::kInternal, "method '" + method_ + "': " + error.what());
    }
  }

  void Settle(Napi::Env env) override {
    if (!failure_.ok()) {
      deferred_.Reject(make_error(env, failure_).Value());
      return;
    }
    auto to_js = [&](const ei::Result<std::vector<IoValue>>& result) -> Napi::Value {
      if (!result.ok()) return make_error(env, result.status()).Value();
      const std::vector<IoValue>& outputs = result.value();
      Napi::Array array = Napi::Array::New(env, outputs.size());
      for (size_t j = 0; j < outputs.size(); ++j) array.Set(static_cast<uint32_t>(j), io_to_js(env, outputs[j]));
      return array;
    };
    Napi::Array results = Napi::Array::New(env, results_.size());
    for (size_t i = 0; i < results_.size(); ++i) results.Set(static_cast<uint32_t>(i), to_js(results_[i]));
    deferred_.Resolve(results);
  }

 private:
  std::shared_ptr<ei::Program> program_;
  std::string method_;
  std::vector<std::vector<IoValue>> inputs_;
  std::vector<ei::Result<std::vector<IoValue>>> results_;
  Status failure_;
};

// A call's inputs converted (and their bytes copied) when the call is made, so that a call
// waiting for its batch keeps the values it was given and a bad input fails the call at once.
using PreparedInputs = std::vector<IoValue>;

Napi::Value ProgramWrap::PrepareInputs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArray()) {
    throw make_error(env, ErrorCode::kInvalidArgument, "prepareInputs(inputs: array) expected");
  }
  Napi::Array array = info[0].As<Napi::Array>();
  auto inputs = std::make_unique<PreparedInputs>(array.Length());
  for (uint32_t i = 0; i < array.Length(); ++i) {
    if (!js_to_io(env, array.Get(i), i, *buffers_, (*inputs)[i])) return env.Undefined();
  }
  return Napi::External<PreparedInputs>::New(env, inputs.release(),
                                             [](Napi::Env, PreparedInputs* prepared) { delete prepared; });
}

Napi::Value ProgramWrap::ExecuteBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto program = require_program(env);
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsArray()) {
    throw make_error(env, ErrorCode::kInvalidArgument, "executeBatch(method: string, calls: array of prepareInputs() results) expected");
  }
  Napi::Array calls = info[1].As<Napi::Array>();
  std::vector<std::vector<IoValue>> inputs(calls.Length());
  for (uint32_t c = 0; c < calls.Length(); ++c) {
    Napi::Value call = calls.Get(c);
    if (!call.IsExternal()) {
      throw make_error(env, ErrorCode::kInvalidArgument, "executeBatch: call " + std::to_string(c) + " is not a prepareInputs() result");
    }
    // Each prepared value runs once: its inputs move into the batch.
    inputs[c] = std::move(*call.As<Napi::External<PreparedInputs>>().Data());
  }
  auto* worker = new ExecuteWorker(env, program, info[0].As<Napi::String>().Utf8Value(), std::move(inputs));
  Napi::Promise promise = worker->promise();
  worker->Queue();
  return promise;
}

class LoadWorker : public ei::napi::PromiseWorker {
 public:
  LoadWorker(Napi::Env env, std::string path, std::vector<uint8_t> bytes, bool from_bytes, ei::LoadOptions options)
      : ei::napi::PromiseWorker(env),
        path_(std::move(path)),
        bytes_(std::move(bytes)),
        from_bytes_(from_bytes),
        options_(options) {}

  void Execute() override {
    try {
      load();
    } catch (const std::bad_alloc&) {
      status_ = Status(ErrorCode::kOutOfMemory, (from_bytes_ ? std::string("<buffer>") : path_) + ": out of memory");
    } catch (const std::exception& error) {
      status_ = Status(ErrorCode::kInternal, (from_bytes_ ? std::string("<buffer>") : path_) + ": " + error.what());
    }
  }

  void load() {
    auto result = from_bytes_ ? ei::Program::load_bytes(bytes_.data(), bytes_.size(), options_)
                              : ei::Program::load_file(path_, options_);
    bytes_.clear();
    bytes_.shrink_to_fit();
    if (!result.ok()) {
      status_ = result.status();
      return;
    }
    program_ = std::move(result).value();
  }

  void Settle(Napi::Env env) override {
    if (!status_.ok()) {
      deferred_.Reject(make_error(env, status_).Value());
      return;
    }
    Napi::Object object = env.GetInstanceData<Napi::FunctionReference>()->New({});
    ProgramWrap::Unwrap(object)->set_program(std::move(program_));
    deferred_.Resolve(object);
  }

 private:
  std::string path_;
  std::vector<uint8_t> bytes_;
  bool from_bytes_;
  ei::LoadOptions options_;
  std::shared_ptr<ei::Program> program_;
  Status status_;
};

Napi::Value LoadProgram(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !(info[0].IsString() || info[0].IsTypedArray())) {
    throw make_error(env, ErrorCode::kInvalidArgument, "loadProgram(source: string | Uint8Array, options) expected");
  }
  ei::LoadOptions options;
  if (info.Length() >= 2 && info[1].IsObject()) {
    Napi::Object object = info[1].As<Napi::Object>();
    if (object.Has("allowUnsupported")) options.allow_unsupported = object.Get("allowUnsupported").ToBoolean().Value();
    if (object.Has("threads") && object.Get("threads").IsNumber()) {
      options.threads = object.Get("threads").As<Napi::Number>().Int32Value();
    }
    if (object.Has("maxInstructions") && object.Get("maxInstructions").IsNumber()) {
      double limit = object.Get("maxInstructions").As<Napi::Number>().DoubleValue();
      if (limit >= 1) options.max_instructions = static_cast<uint64_t>(limit);
    }
    if (object.Has("maxMemory") && object.Get("maxMemory").IsNumber()) {
      double limit = object.Get("maxMemory").As<Napi::Number>().DoubleValue();
      if (limit >= 1) options.max_planned_bytes = static_cast<uint64_t>(limit);
    }
  }
  std::string path;
  std::vector<uint8_t> bytes;
  bool from_bytes = info[0].IsTypedArray();
  if (from_bytes) {
    Napi::TypedArray array = info[0].As<Napi::TypedArray>();
    const uint8_t* base = static_cast<const uint8_t*>(array.ArrayBuffer().Data()) + array.ByteOffset();
    bytes.assign(base, base + array.ByteLength());
  } else {
    path = info[0].As<Napi::String>().Utf8Value();
  }
  auto* worker = new LoadWorker(env, std::move(path), std::move(bytes), from_bytes, options);
  Napi::Promise promise = worker->promise();
  worker->Queue();
  return promise;
}

Napi::Value Kernels(const Napi::CallbackInfo& info) {
  auto kernels = ei::all_kernels();
  Napi::Array array = Napi::Array::New(info.Env(), kernels.size());
  for (size_t i = 0; i < kernels.size(); ++i) {
    array.Set(static_cast<uint32_t>(i), ei::operator_full_name(kernels[i].name, kernels[i].overload));
  }
  return array;
}

Napi::Value Backends(const Napi::CallbackInfo& info) {
  auto ids = ei::backend_ids();
  Napi::Array array = Napi::Array::New(info.Env(), ids.size());
  for (size_t i = 0; i < ids.size(); ++i) array.Set(static_cast<uint32_t>(i), std::string(ids[i]));
  return array;
}

// Times the XNNPACK backend's matrix product alone (a linear layer, weight [n, k]) for the
// benchmark's roofline: returns the median seconds of `repetitions` runs, through the BLAS or,
// when the sixth argument is true, through packed weights. Runs on the JS thread; not part of
// the public API.
Napi::Value BenchmarkLinear(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 5) throw make_error(env, ErrorCode::kInvalidArgument, "benchmarkLinear(m, n, k, threads, repetitions)");
  int64_t m = info[0].As<Napi::Number>().Int64Value();
  int64_t n = info[1].As<Napi::Number>().Int64Value();
  int64_t k = info[2].As<Napi::Number>().Int64Value();
  int threads = info[3].As<Napi::Number>().Int32Value();
  int repetitions = info[4].As<Napi::Number>().Int32Value();
  if (m <= 0 || n <= 0 || k <= 0 || m * k > (int64_t{1} << 28) || n * k > (int64_t{1} << 28) || repetitions <= 0) {
    throw make_error(env, ErrorCode::kInvalidArgument, "benchmarkLinear: sizes out of range");
  }
  std::vector<float> a(static_cast<size_t>(m * k)), w(static_cast<size_t>(n * k)), c(static_cast<size_t>(m * n));
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<float>(i % 13) * 0.01f;
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>(i % 7) * 0.01f;
  bool packed = info.Length() >= 6 && info[5].ToBoolean().Value();
  ei::ThreadPool pool(threads);
  ei::xnn::use_single_threaded_blas();
  ei::xnn::PackedWeights weights;
  if (packed && !ei::xnn::pack_weights(&pool, w.data(), n, k, false, nullptr, weights)) {
    throw make_error(env, ErrorCode::kInvalidArgument, "benchmarkLinear: this build has no packed kernel");
  }
  auto run = [&] {
    if (packed) {
      ei::xnn::packed_linear(&pool, m, a.data(), k, weights, c.data(), n);
    } else {
      ei::xnn::linear(&pool, m, n, k, a.data(), w.data(), false, nullptr, c.data());
    }
  };
  // Warm-up of at least 0.2 s. Timed at once, products of about 1 ms on 2 threads sometimes
  // took as long as on 1 (2-core KVM guest, 2026-12-05), presumably while the new worker still
  // shared the caller's core. After this warm-up they ran 1.8 to 1.9 times as fast.
  auto warm_until = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
  do {
    run();
  } while (std::chrono::steady_clock::now() < warm_until);
  std::vector<double> times;
  for (int r = 0; r < repetitions; ++r) {
    auto start = std::chrono::steady_clock::now();
    run();
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(times.begin(), times.end());
  return Napi::Number::New(env, times[times.size() / 2]);
}

// fmaPeak(seconds): GFLOP/s of fused multiply-adds on one thread, for the benchmark.
Napi::Value FmaPeak(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double seconds = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : 0.2;
  if (!(seconds > 0 && seconds <= 10)) throw make_error(env, ErrorCode::kInvalidArgument, "fmaPeak: seconds must be in (0, 10]");
  return Napi::Number::New(env, ei::xnn::fma_peak_gflops(seconds));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  ProgramWrap::Init(env);
  exports.Set("loadProgram", Napi::Function::New(env, LoadProgram));
  exports.Set("kernels", Napi::Function::New(env, Kernels));
  exports.Set("backends", Napi::Function::New(env, Backends));
  exports.Set("benchmarkLinear", Napi::Function::New(env, BenchmarkLinear));
  exports.Set("fmaPeak", Napi::Function::New(env, FmaPeak));
  ei::napi::register_preprocess(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(embed_image, Init)
