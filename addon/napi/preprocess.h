// Node-API functions of the image preprocessing (addon/preprocess).
#pragma once

#include <napi.h>

namespace ei::napi {

// Adds resizePixels and cmykToRgb to the addon's exports.
void register_preprocess(Napi::Env env, Napi::Object exports);

}  // namespace ei::napi
