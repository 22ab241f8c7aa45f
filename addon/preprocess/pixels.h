// Pixel conversions of the phone's preprocessing: OpenCV's CMYK-to-RGB formula for CMYK
// JPEGs and the float tensor layout that react-native-executorch builds from an RGB image.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ei::preprocess {

// Conversion of 8-bit values to floats in the model input.
enum class Scaling {
  // (double)v / 255.0 rounded to float: react-native-executorch's colorMatToVector
  // (mean 0, std 1) in 0.5 to 0.9.
  kDouble,
  // v * (float)(1 / 255.0) in float: cv::Mat::convertTo(CV_32F, 1.0 / 255) for 8-bit input.
  kFloat,
};

// Converts `pixels` CMYK pixels to RGB with the integer formula of OpenCV's JPEG decoder
// (icvCvt_CMYK2BGR_8u_C4C3R in OpenCV 4.x): for channel values c and k as libjpeg returns
// them from an Adobe CMYK JPEG (stored inverted, 255 = no ink), R = k - ((255 - c) * k >> 8).
// With `inverted_input` true, the input contains 255 - (libjpeg's value), as libvips returns
// CMYK JPEGs, and each value is inverted back first.
void cmyk_to_rgb(const uint8_t* cmyk, size_t pixels, bool inverted_input, uint8_t* rgb);

// Writes the interleaved RGB image `rgb` (height x width x 3) as planar float values
// [3, height, width] scaled to [0, 1] by `scaling`.
void rgb_to_planar_float(const uint8_t* rgb, int width, int height, Scaling scaling, float* planar);

}  // namespace ei::preprocess
