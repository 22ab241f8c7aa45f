// Node-API bindings of the image preprocessing. The work runs in Napi::AsyncWorker threads,
// off the JS thread, on copies of the input pixels, so the caller may reuse or transfer its
// buffers at once.
#include "napi/preprocess.h"

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "napi/promise_worker.h"
#include "preprocess/pixels.h"
#include "preprocess/resize_linear.h"

namespace ei::napi {
namespace {

// Largest output side and area accepted: far above any model input, small enough that the
// buffers of one call stay below about 3 GB.
constexpr int64_t kMaxOutputSide = 1 << 15;
constexpr int64_t kMaxOutputPixels = int64_t{1} << 28;

Napi::Error invalid_argument(Napi::Env env, const std::string& message) {
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, "ERR_INVALID_ARGUMENT"));
  return error;
}

int64_t integer_argument(const Napi::CallbackInfo& info, size_t index, const char* name) {
  if (info.Length() <= index || !info[index].IsNumber()) {
    throw invalid_argument(info.Env(), std::string(name) + " must be a number");
  }
  double value = info[index].As<Napi::Number>().DoubleValue();
  if (!(value >= 1 && value <= 9007199254740991.0) || value != static_cast<double>(static_cast<int64_t>(value))) {
    throw invalid_argument(info.Env(), std::string(name) + " must be a positive integer, got " + std::to_string(value));
  }
  return static_cast<int64_t>(value);
}

// Copies the bytes of a Uint8Array argument after checking that it has `expected` bytes.
std::vector<uint8_t> bytes_argument(const Napi::CallbackInfo& info, size_t index, const char* name, uint64_t expected) {
  if (info.Length() <= index || !info[index].IsTypedArray() ||
      info[index].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw invalid_argument(info.Env(), std::string(name) + " must be a Uint8Array");
  }
  Napi::Uint8Array array = info[index].As<Napi::Uint8Array>();
  if (array.ByteLength() != expected) {
    throw invalid_argument(info.Env(), std::string(name) + " has " + std::to_string(array.ByteLength()) +
                                           " bytes, expected " + std::to_string(expected));
  }
  return std::vector<uint8_t>(array.Data(), array.Data() + array.ByteLength());
}

Napi::Uint8Array to_uint8_array(Napi::Env env, const std::vector<uint8_t>& bytes) {
  Napi::Uint8Array array = Napi::Uint8Array::New(env, bytes.size());
  if (!bytes.empty()) std::memcpy(array.Data(), bytes.data(), bytes.size());
  return array;
}

enum class TensorScaling { kNone, kDouble, kFloat };

class ResizeWorker : public PromiseWorker {
 public:
  ResizeWorker(Napi::Env env, std::vector<uint8_t> pixels, int width, int height, int channels, int out_width,
               int out_height, TensorScaling scaling)
      : PromiseWorker(env),
        pixels_(std::move(pixels)),
        width_(width),
        height_(height),
        channels_(channels),
        out_width_(out_width),
        out_height_(out_height),
        scaling_(scaling) {}


  void Execute() override {
    size_t out_pixels = static_cast<size_t>(out_width_) * static_cast<size_t>(out_height_);
    resized_.resize(out_pixels * static_cast<size_t>(channels_));
    ei::preprocess::resize_linear_u8(pixels_.data(), width_, height_, channels_, resized_.data(), out_width_,
                                     out_height_);
    pixels_.clear();
    pixels_.shrink_to_fit();
    if (scaling_ == TensorScaling::kNone) return;
    tensor_.resize(out_pixels * 3);
    auto scaling = scaling_ == TensorScaling::kDouble ? ei::preprocess::Scaling::kDouble : ei::preprocess::Scaling::kFloat;
    ei::preprocess::rgb_to_planar_float(resized_.data(), out_width_, out_height_, scaling, tensor_.data());
  }

  void Settle(Napi::Env env) override {
    Napi::Object result = Napi::Object::New(env);
    result.Set("resized", to_uint8_array(env, resized_));
    if (scaling_ == TensorScaling::kNone) {
      result.Set("tensor", env.Null());
    } else {
      Napi::Float32Array tensor = Napi::Float32Array::New(env, tensor_.size());
      std::memcpy(tensor.Data(), tensor_.data(), tensor_.size() * sizeof(float));
      result.Set("tensor", tensor);
    }
    deferred_.Resolve(result);
  }

 private:
  std::vector<uint8_t> pixels_;
  int width_, height_, channels_, out_width_, out_height_;
  TensorScaling scaling_;
  std::vector<uint8_t> resized_;
  std::vector<float> tensor_;
};

// resizePixels(pixels, width, height, channels, outWidth, outHeight, scaling)
//   -> Promise<{ resized: Uint8Array, tensor: Float32Array | null }>
// Resizes interleaved 8-bit pixels with OpenCV's INTER_LINEAR arithmetic. With scaling
// 'double' or 'float' (3 channels only) it also returns the planar [3, outHeight, outWidth]
// tensor; 'none' returns only the resized pixels.
Napi::Value ResizePixels(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t width = integer_argument(info, 1, "width");
  int64_t height = integer_argument(info, 2, "height");
  int64_t channels = integer_argument(info, 3, "channels");
  int64_t out_width = integer_argument(info, 4, "outWidth");
  int64_t out_height = integer_argument(info, 5, "outHeight");

  if (channels > 4) throw invalid_argument(env, "channels must be 1 to 4, got " + std::to_string(channels));
  if (width >= (int64_t{1} << 30) / channels || height >= (int64_t{1} << 30)) {
    throw invalid_argument(env, "image of " + std::to_string(width) + "x" + std::to_string(height) + " is too large");
  }
  if (out_width > kMaxOutputSide || out_height > kMaxOutputSide || out_width * out_height > kMaxOutputPixels) {
    throw invalid_argument(env, "output size " + std::to_string(out_width) + "x" + std::to_string(out_height) +
                                    " is too large (each side at most " + std::to_string(kMaxOutputSide) + ")");
  }

  std::string scaling_name = info.Length() > 6 && info[6].IsString() ? info[6].As<Napi::String>().Utf8Value() : "";
  TensorScaling scaling;
  if (scaling_name == "none") {
    scaling = TensorScaling::kNone;
  } else if (scaling_name == "double") {
    scaling = TensorScaling::kDouble;
  } else if (scaling_name == "float") {
    scaling = TensorScaling::kFloat;
  } else {
    throw invalid_argument(env, "scaling must be 'none', 'double' or 'float', got '" + scaling_name + "'");
  }
  if (scaling != TensorScaling::kNone && channels != 3) {
    throw invalid_argument(env, "a tensor needs 3 channels, got " + std::to_string(channels));
  }

  uint64_t expected = static_cast<uint64_t>(width) * static_cast<uint64_t>(height) * static_cast<uint64_t>(channels);
  std::vector<uint8_t> pixels = bytes_argument(info, 0, "pixels", expected);
  auto* worker = new ResizeWorker(env, std::move(pixels), static_cast<int>(width), static_cast<int>(height),
                                  static_cast<int>(channels), static_cast<int>(out_width),
                                  static_cast<int>(out_height), scaling);
  Napi::Promise promise = worker->promise();
  worker->Queue();
  return promise;
}

class CmykWorker : public PromiseWorker {
 public:
  CmykWorker(Napi::Env env, std::vector<uint8_t> cmyk, bool inverted)
      : PromiseWorker(env), cmyk_(std::move(cmyk)), inverted_(inverted) {}

  void Execute() override {
    size_t pixels = cmyk_.size() / 4;
    rgb_.resize(pixels * 3);
    ei::preprocess::cmyk_to_rgb(cmyk_.data(), pixels, inverted_, rgb_.data());
  }

  void Settle(Napi::Env env) override { deferred_.Resolve(to_uint8_array(env, rgb_)); }

 private:
  std::vector<uint8_t> cmyk_;
  bool inverted_;
  std::vector<uint8_t> rgb_;
};

// cmykToRgb(pixels, width, height, inverted) -> Promise<Uint8Array>
// Converts interleaved CMYK to RGB as OpenCV's JPEG decoder does. With `inverted` true, the
// values are 255 minus libjpeg's, as libvips returns CMYK JPEGs.
Napi::Value CmykToRgb(const Napi::CallbackInfo& info) {
  int64_t width = integer_argument(info, 1, "width");
  int64_t height = integer_argument(info, 2, "height");
  if (width >= (int64_t{1} << 30) || height >= (int64_t{1} << 30)) {
    throw invalid_argument(info.Env(), "image of " + std::to_string(width) + "x" + std::to_string(height) + " is too large");
  }
  bool inverted = info.Length() > 3 && info[3].ToBoolean().Value();
  std::vector<uint8_t> cmyk = bytes_argument(info, 0, "pixels", static_cast<uint64_t>(width) * static_cast<uint64_t>(height) * 4);
  auto* worker = new CmykWorker(info.Env(), std::move(cmyk), inverted);
  Napi::Promise promise = worker->promise();
  worker->Queue();
  return promise;
}

}  // namespace

void register_preprocess(Napi::Env env, Napi::Object exports) {
  exports.Set("resizePixels", Napi::Function::New(env, ResizePixels));
  exports.Set("cmykToRgb", Napi::Function::New(env, CmykToRgb));
}

}  // namespace ei::napi
