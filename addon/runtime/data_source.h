// The bytes of a loaded .pte file: a private memory map of the file, or an owned aligned copy
// of a caller's buffer. Constant tensors point straight into these bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "runtime/status.h"

namespace ei {

class DataSource {
 public:
  ~DataSource();
  DataSource(const DataSource&) = delete;
  DataSource& operator=(const DataSource&) = delete;

  // Maps the file copy-on-write: pages stay shared with the page cache unless written, so a
  // hostile program that names a constant as a kernel output cannot fault or change the file.
  static Result<std::unique_ptr<DataSource>> map_file(const std::string& path);
  static Result<std::unique_ptr<DataSource>> copy_of(const uint8_t* bytes, size_t size);

  const uint8_t* data() const { return data_; }
  uint8_t* mutable_data() const { return data_; }
  size_t size() const { return size_; }
  bool mapped() const { return mapped_; }

  // Drops the whole pages inside [data, data + size) of a mapped file from this process's
  // memory; a later read maps them again from the file. Does nothing for an owned copy,
  // where the bytes would be lost.
  void release(const void* data, size_t size) const;
  const std::string& name() const { return name_; }

 private:
  DataSource() = default;

  uint8_t* data_ = nullptr;
  size_t size_ = 0;
  size_t mapped_size_ = 0;
  bool mapped_ = false;
  std::string name_;
};

}  // namespace ei
