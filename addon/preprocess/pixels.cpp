#include "preprocess/pixels.h"

#include <array>

namespace ei::preprocess {

void cmyk_to_rgb(const uint8_t* cmyk, size_t pixels, bool inverted_input, uint8_t* rgb) {
  const int flip = inverted_input ? 255 : 0;
  for (size_t i = 0; i < pixels; ++i) {
    const uint8_t* in = cmyk + 4 * i;
    int k = in[3] ^ flip;  // 255 - v for 8-bit v when flip is 255
    for (int c = 0; c < 3; ++c) {
      int value = in[c] ^ flip;
      rgb[3 * i + c] = static_cast<uint8_t>(k - (((255 - value) * k) >> 8));
    }
  }
}

void rgb_to_planar_float(const uint8_t* rgb, int width, int height, Scaling scaling, float* planar) {
  // A table per scaling gives the same bits as computing each value, 256 times instead of
  // once per sample.
  std::array<float, 256> table{};
  const float scale = static_cast<float>(1.0 / 255.0);
  for (int v = 0; v < 256; ++v) {
    table[static_cast<size_t>(v)] =
        scaling == Scaling::kDouble ? static_cast<float>(static_cast<double>(v) / 255.0) : static_cast<float>(v) * scale;
  }
  const size_t plane = static_cast<size_t>(width) * static_cast<size_t>(height);
  for (size_t i = 0; i < plane; ++i) {
    planar[i] = table[rgb[3 * i]];
    planar[plane + i] = table[rgb[3 * i + 1]];
    planar[2 * plane + i] = table[rgb[3 * i + 2]];
  }
}

}  // namespace ei::preprocess
