// Bilinear resizing of 8-bit interleaved images with the arithmetic of OpenCV's cv::resize
// and INTER_LINEAR (checked against OpenCV 4.6; see docs/preprocessing.md), so that the
// output matches OpenCV's byte for byte.
#pragma once

#include <cstdint>

namespace ei::preprocess {

// Resizes `src` (src_height rows of src_width pixels with `channels` interleaved 8-bit samples,
// no row padding) to dst_width x dst_height into `dst`. Both sizes must be at least 1 and
// channels 1 to 4. Equal sizes copy the image, as cv::resize does.
void resize_linear_u8(const uint8_t* src, int src_width, int src_height, int channels, uint8_t* dst,
                      int dst_width, int dst_height);

}  // namespace ei::preprocess
