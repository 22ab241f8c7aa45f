// Reading little-endian fields and checking byte ranges of untrusted file data.
#pragma once

#include <cstdint>
#include <cstring>

namespace ei {

// Reads a T stored at `bytes`, which need not be aligned. File formats here are little-endian,
// like every platform embed-image builds on.
template <typename T>
T read_le(const uint8_t* bytes) {
  T value;
  std::memcpy(&value, bytes, sizeof(value));
  return value;
}

// True when [offset, offset + size) lies within [0, limit), without overflow.
inline bool range_fits(uint64_t offset, uint64_t size, uint64_t limit) {
  return offset <= limit && size <= limit - offset;
}

}  // namespace ei
