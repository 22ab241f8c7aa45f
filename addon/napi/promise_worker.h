// An AsyncWorker that settles a JS promise with its result.
#pragma once

#include <napi.h>

namespace ei::napi {

// Runs Execute() on a libuv thread, then Settle() on the JS thread, where the subclass resolves
// or rejects deferred_. An exception from Settle() becomes the promise's rejection, and never
// escapes: node-addon-api would rethrow it into JS, and when that fails too (the environment of
// a terminated worker thread can run no JS) the whole process aborts.
class PromiseWorker : public Napi::AsyncWorker {
 public:
  explicit PromiseWorker(Napi::Env env) : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)) {}

  Napi::Promise promise() { return deferred_.Promise(); }

 protected:
  // Resolves or rejects deferred_ with the result of Execute(); runs on the JS thread.
  virtual void Settle(Napi::Env env) = 0;

  Napi::Promise::Deferred deferred_;

 private:
  void OnOK() final {
    settle_safely([&] { Settle(Env()); });
  }

  void OnError(const Napi::Error& error) final {
    settle_safely([&] { deferred_.Reject(error.Value()); });
  }

  template <typename Settler>
  void settle_safely(Settler&& settle) {
    try {
      settle();
    } catch (const Napi::Error& error) {
      try {
        deferred_.Reject(error.Value());
      } catch (const Napi::Error&) {
        // The environment is ending and its promises can no longer settle.
      }
    }
  }
};

}  // namespace ei::napi
