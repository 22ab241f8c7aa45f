#include "runtime/data_source.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace ei {

DataSource::~DataSource() {
  if (mapped_) {
    if (mapped_size_ > 0) munmap(data_, mapped_size_);
  } else {
    std::free(data_);
  }
}

Result<std::unique_ptr<DataSource>> DataSource::map_file(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int code = errno;
    if (code == ENOENT || code == ENOTDIR) {
      return error(ErrorCode::kFileNotFound, "file not found: ", path);
    }
    return error(ErrorCode::kFileRead, "cannot open ", path, ": ", std::strerror(code));
  }
  struct stat info {};
  if (fstat(fd, &info) != 0) {
    int code = errno;
    close(fd);
    return error(ErrorCode::kFileRead, "cannot stat ", path, ": ", std::strerror(code));
  }
  if (!S_ISREG(info.st_mode)) {
    close(fd);
    return error(ErrorCode::kFileRead, path, " is not a regular file");
  }

  std::unique_ptr<DataSource> source(new DataSource());
  source->name_ = path;
  source->mapped_ = true;
  source->size_ = static_cast<size_t>(info.st_size);
  if (source->size_ > 0) {
    void* address = mmap(nullptr, source->size_, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (address == MAP_FAILED) {
      int code = errno;
      close(fd);
      source->mapped_ = false;
      return error(ErrorCode::kFileRead, "cannot map ", path, ": ", std::strerror(code));
    }
    source->data_ = static_cast<uint8_t*>(address);
    source->mapped_size_ = source->size_;
  }
  close(fd);
  return source;
}

void DataSource::release(const void* data, size_t size) const {
  if (!mapped_ || size == 0) return;
  auto begin = reinterpret_cast<uintptr_t>(data);
  auto base = reinterpret_cast<uintptr_t>(data_);
  if (begin < base || begin + size > base + size_) return;
  uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  uintptr_t first = (begin + page - 1) / page * page;
  uintptr_t last = (begin + size) / page * page;
  // The mapping is private and these pages were never written, so dropping them loses nothing.
  if (last > first) madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

Result<std::unique_ptr<DataSource>> DataSource::copy_of(const uint8_t* bytes, size_t size) {
  std::unique_ptr<DataSource> source(new DataSource());
  source->name_ = "<buffer>";
  constexpr size_t kAlignment = 64;
  size_t rounded = (size + kAlignment - 1) / kAlignment * kAlignment;
  source->data_ = static_cast<uint8_t*>(std::aligned_alloc(kAlignment, rounded == 0 ? kAlignment : rounded));
  if (source->data_ == nullptr) return error(ErrorCode::kOutOfMemory, "cannot allocate ", size, " bytes for the program");
  if (size > 0) std::memcpy(source->data_, bytes, size);
  source->size_ = size;
  return source;
}

}  // namespace ei
