// Loading a .pte file: header, flatbuffer verification and the program-wide tables
// (segments, constants, named data). Method preparation and execution are in method.cpp.
#include "runtime/program.h"

#include <cstring>
#include <limits>

#include "program_generated.h"
#include "runtime/bytes.h"

namespace ei {

namespace {

constexpr size_t kIdentifierOffset = 4;
constexpr size_t kHeaderOffset = 8;
constexpr char kHeaderMagic[4] = {'e', 'h', '0', '0'};
// The first form of eh00 carries program_size and segment_base_offset; the current form
// (upstream ExecuTorch since 2025) appends segment_data_size.
constexpr uint32_t kHeaderShortLength = 24;
constexpr uint32_t kHeaderLength = 32;

// True when the elements of `vector` start at a multiple of their size (an absent vector
// counts as aligned).
template <typename T>
bool elements_aligned(const flatbuffers::Vector<T>* vector) {
  return vector == nullptr || reinterpret_cast<uintptr_t>(vector->Data()) % sizeof(T) == 0;
}

// Returns the name of the first vector of 8-byte elements that is not 8-byte aligned, or "".
// The flatbuffers Verifier (2.0.8) aligns only a vector's 4-byte length field, so such a
// vector may start 4 bytes off, and reading its elements would be an unaligned typed load.
std::string find_misaligned_vector(const ei_pte::Program* program) {
  const auto* constants = program->constant_segment();
  if (constants != nullptr && !elements_aligned(constants->offsets())) return "constant_segment.offsets";
  if (const auto* mutable_segments = program->mutable_data_segments()) {
    for (flatbuffers::uoffset_t i = 0; i < mutable_segments->size(); ++i) {
      if (!elements_aligned(mutable_segments->Get(i)->offsets())) {
        return "mutable_data_segments[" + std::to_string(i) + "].offsets";
      }
    }
  }
  const auto* plans = program->execution_plan();
  if (plans == nullptr) return "";
  for (flatbuffers::uoffset_t p = 0; p < plans->size(); ++p) {
    const auto* plan = plans->Get(p);
    std::string where = "execution_plan[" + std::to_string(p) + "]";
    if (!elements_aligned(plan->non_const_buffer_sizes())) return where + ".non_const_buffer_sizes";
    const auto* values = plan->values();
    if (values == nullptr) continue;
    for (flatbuffers::uoffset_t v = 0; v < values->size(); ++v) {
      const auto* value = values->Get(v);
      const auto* ints = value->val_as_IntList();
      const auto* doubles = value->val_as_DoubleList();
      if ((ints != nullptr && !elements_aligned(ints->items())) ||
          (doubles != nullptr && !elements_aligned(doubles->items()))) {
        return where + ".values[" + std::to_string(v) + "].items";
      }
    }
  }
  return "";
}

class ProgramNamedData final : public NamedDataMap {
 public:
  explicit ProgramNamedData(const Program& program) : program_(program) {}

  Result<std::span<const uint8_t>> get(std::string_view key) const override {
    const auto* named = program_.flatbuffer()->named_data();
    if (named != nullptr) {
      for (const auto* entry : *named) {
        if (entry->key() != nullptr && entry->key()->string_view() == key) {
          return program_.segment(entry->segment_index());
        }
      }
    }
    return error(ErrorCode::kMalformed, "named data '", key, "' is not in the program");
  }

 private:
  const Program& program_;
};

}  // namespace

Program::~Program() = default;

Result<std::shared_ptr<Program>> Program::load_file(const std::string& path, const LoadOptions& options) {
  EI_ASSIGN_OR_RETURN(auto source, DataSource::map_file(path));
  return load(std::move(source), options);
}

Result<std::shared_ptr<Program>> Program::load_bytes(const uint8_t* bytes, size_t size, const LoadOptions& options) {
  EI_ASSIGN_OR_RETURN(auto source, DataSource::copy_of(bytes, size));
  return load(std::move(source), options);
}

Result<std::shared_ptr<Program>> Program::load(std::unique_ptr<DataSource> source, const LoadOptions& options) {
  std::shared_ptr<Program> program(new Program());
  program->source_ = std::move(source);
  program->options_ = options;
  const std::string& name = program->source_->name();

  EI_RETURN_IF_ERROR(program->parse_header().with_context(name + ": "));
  EI_RETURN_IF_ERROR(program->verify_flatbuffer().with_context(name + ": "));
  EI_RETURN_IF_ERROR(program->check_program_tables().with_context(name + ": "));
  program->named_data_ = std::make_unique<ProgramNamedData>(*program);
  program->pool_ = std::make_unique<ThreadPool>(options.threads);

  const auto* plans = program->program_->execution_plan();
  size_t plan_count = plans == nullptr ? 0 : plans->size();
  for (size_t i = 0; i < plan_count; ++i) {
    auto plan = std::make_unique<MethodPlan>();
    const auto* flat_plan = plans->Get(static_cast<flatbuffers::uoffset_t>(i));
    plan->name = flat_plan->name() == nullptr ? "" : flat_plan->name()->str();
    EI_RETURN_IF_ERROR(program->prepare_method(*plan, flat_plan)
                           .with_context(name + ": method '" + plan->name + "': "));
    if (!plan->runnable() && !options.allow_unsupported) {
      const Problem& first = plan->problems.front();
      return Status(first.code, name + ": method '" + plan->name + "': " + first.message);
    }
    program->methods_.push_back(std::move(plan));
  }
  return program;
}

Status Program::parse_header() {
  const uint8_t* data = source_->data();
  size_t size = source_->size();
  if (size < kHeaderOffset) {
    return error(ErrorCode::kTruncated, "file is ", size, " bytes, too short for a .pte program (at least 8)");
  }
  if (std::memcmp(data + kIdentifierOffset, "ET12", 4) != 0) {
    std::string found;
    for (size_t i = 0; i < 4; ++i) {
      char c = static_cast<char>(data[kIdentifierOffset + i]);
      found += (c >= 32 && c < 127) ? c : '?';
    }
    return error(ErrorCode::kBadIdentifier, "not an ExecuTorch program: file identifier is '", found,
                 "' where a .pte file has 'ET12' (bytes 4-7); check the file is a .pte written by ExecuTorch");
  }

  program_size_ = size;
  segment_base_ = size;
  if (size >= kHeaderOffset + 8 && std::memcmp(data + kHeaderOffset, kHeaderMagic, 4) == 0) {
    header_.present = true;
    header_.length = read_le<uint32_t>(data + kHeaderOffset + 4);
    if (header_.length < kHeaderShortLength) {
      return error(ErrorCode::kBadHeader, "extended header length ", header_.length, " is less than ",
                   kHeaderShortLength);
    }
    if (!range_fits(kHeaderOffset, header_.length, size)) {
      return error(ErrorCode::kTruncated, "extended header of ", header_.length, " bytes runs past the end of the ",
                   size, "-byte file");
    }
    header_.program_size = read_le<uint64_t>(data + kHeaderOffset + 8);
    header_.segment_base_offset = read_le<uint64_t>(data + kHeaderOffset + 16);
    if (header_.length >= kHeaderLength) header_.segment_data_size = read_le<uint64_t>(data + kHeaderOffset + 24);

    if (header_.program_size > size) {
      return error(ErrorCode::kTruncated, "extended header declares a ", header_.program_size,
                   "-byte program but the file has ", size, " bytes");
    }
    if (header_.program_size < kHeaderOffset + header_.length) {
      return error(ErrorCode::kBadHeader, "extended header declares a program size of ", header_.program_size,
                   " bytes, smaller than the header itself");
    }
    program_size_ = header_.program_size;
    if (header_.segment_base_offset != 0) {
      if (header_.segment_base_offset < program_size_) {
        return error(ErrorCode::kBadHeader, "segment base offset ", header_.segment_base_offset,
                     " lies inside the program data (", program_size_, " bytes)");
      }
      if (header_.segment_base_offset > size) {
        return error(ErrorCode::kTruncated, "segment base offset ", header_.segment_base_offset,
                     " is past the end of the ", size, "-byte file");
      }
      segment_base_ = header_.segment_base_offset;
    }
    if (header_.segment_data_size != 0 && !range_fits(segment_base_, header_.segment_data_size, size)) {
      return error(ErrorCode::kTruncated, "file has ", size, " bytes but its header declares ",
                   header_.segment_data_size, " bytes of segment data from offset ", segment_base_,
                   "; the file is probably truncated (download it again)");
    }
  }
  return Status::Ok();
}

Status Program::verify_flatbuffer() {
  // Depth 64 and one million tables are the library defaults; a ViT-B/32 program uses a few
  // thousand tables. Alignment is checked so every typed read below is aligned.
  flatbuffers::Verifier verifier(source_->data(), program_size_, 64, 1000000, true);
  if (!ei_pte::VerifyProgramBuffer(verifier)) {
    return error(ErrorCode::kVerifyFailed, "the program flatbuffer (", program_size_,
                 " bytes) failed verification: the file is corrupt or truncated, or not written by ExecuTorch");
  }
  program_ = ei_pte::GetProgram(source_->data());
  std::string misaligned = find_misaligned_vector(program_);
  if (!misaligned.empty()) {
    return error(ErrorCode::kVerifyFailed, "the program flatbuffer failed verification: the elements of ", misaligned,
                 " are not 8-byte aligned");
  }
  return Status::Ok();
}

Status Program::check_program_tables() {
  uint64_t file_size = source_->size();
  uint64_t segment_limit = file_size - segment_base_;
  if (header_.segment_data_size != 0) segment_limit = header_.segment_data_size;

  const auto* segments = program_->segments();
  if (segments != nullptr) {
    for (flatbuffers::uoffset_t i = 0; i < segments->size(); ++i) {
      const auto* segment = segments->Get(i);
      if (!range_fits(segment->offset(), segment->size(), segment_limit)) {
        // parse_header() checked a declared segment data size against the file, so past it the
        // segment table is wrong. Without one, the data ends at the end of the file, and a
        // segment past it means the file was cut short (also in the middle of the segment).
        bool declared = header_.segment_data_size != 0;
        return error(declared ? ErrorCode::kMalformed : ErrorCode::kTruncated, "segment ", i, " (offset ",
                     segment->offset(), ", size ", segment->size(), ") runs past the end of the segment data (",
                     segment_limit, " bytes from offset ", segment_base_, ")",
                     declared ? "" : "; the file is probably truncated");
      }
      segments_.emplace_back(source_->data() + segment_base_ + segment->offset(), segment->size());
    }
  }

  const auto* constants = program_->constant_segment();
  if (constants != nullptr && constants->offsets() != nullptr && constants->offsets()->size() > 1) {
    if (constants->segment_index() >= segments_.size()) {
      return error(ErrorCode::kMalformed, "constant_segment.segment_index ", constants->segment_index(),
                   " is out of range (", segments_.size(), " segments)");
    }
  }
  const auto* mutable_segments = program_->mutable_data_segments();
  if (mutable_segments != nullptr) {
    for (flatbuffers::uoffset_t i = 0; i < mutable_segments->size(); ++i) {
      if (mutable_segments->Get(i)->segment_index() >= segments_.size()) {
        return error(ErrorCode::kMalformed, "mutable_data_segments[", i, "].segment_index ",
                     mutable_segments->Get(i)->segment_index(), " is out of range (", segments_.size(), " segments)");
      }
    }
  }
  const auto* named = program_->named_data();
  if (named != nullptr) {
    for (flatbuffers::uoffset_t i = 0; i < named->size(); ++i) {
      const auto* entry = named->Get(i);
      if (entry->key() == nullptr) return error(ErrorCode::kMalformed, "named_data[", i, "] has no key");
      if (entry->segment_index() >= segments_.size()) {
        return error(ErrorCode::kMalformed, "named_data['", entry->key()->string_view(), "'].segment_index ",
                     entry->segment_index(), " is out of range (", segments_.size(), " segments)");
      }
    }
  }
  return Status::Ok();
}

std::span<const uint8_t> Program::segment(size_t index) const {
  return index < segments_.size() ? segments_[index] : std::span<const uint8_t>();
}

std::vector<std::string> Program::named_data_keys() const {
  std::vector<std::string> keys;
  if (program_->named_data() != nullptr) {
    for (const auto* entry : *program_->named_data()) keys.push_back(entry->key()->str());
  }
  return keys;
}

Result<const uint8_t*> Program::tensor_data(const ei_pte::Tensor* tensor, size_t nbytes, bool mutable_initial) const {
  uint32_t index = tensor->data_buffer_idx();
  if (mutable_initial) {
    uint64_t list_index = 0;
    if (tensor->extra_tensor_info() != nullptr) list_index = tensor->extra_tensor_info()->mutable_data_segments_idx();
    const auto* lists = program_->mutable_data_segments();
    if (lists == nullptr || list_index >= lists->size()) {
      return error(ErrorCode::kMalformed, "initial value refers to mutable_data_segments[", list_index,
                   "], which does not exist");
    }
    const auto* list = lists->Get(static_cast<flatbuffers::uoffset_t>(list_index));
    if (list->offsets() == nullptr || index >= list->offsets()->size()) {
      return error(ErrorCode::kMalformed, "data_buffer_idx ", index, " is out of range of mutable_data_segments[",
                   list_index, "]");
    }
    std::span<const uint8_t> bytes = segment(list->segment_index());
    uint64_t offset = list->offsets()->Get(index);
    if (!range_fits(offset, nbytes, bytes.size())) {
      return error(ErrorCode::kMalformed, "initial value of ", nbytes, " bytes at offset ", offset,
                   " runs past the end of segment ", list->segment_index(), " (", bytes.size(), " bytes)");
    }
    return bytes.data() + offset;
  }

  const auto* inline_buffers = program_->constant_buffer();
  if (inline_buffers != nullptr && inline_buffers->size() > 0) {
    if (index >= inline_buffers->size()) {
      return error(ErrorCode::kMalformed, "data_buffer_idx ", index, " is out of range (", inline_buffers->size(),
                   " inline constant buffers)");
    }
    const auto* storage = inline_buffers->Get(index)->storage();
    size_t available = storage == nullptr ? 0 : storage->size();
    if (available < nbytes) {
      return error(ErrorCode::kMalformed, "constant buffer ", index, " contains ", available, " bytes but the tensor needs ",
                   nbytes);
    }
    return storage == nullptr ? source_->data() : storage->data();
  }

  const auto* constants = program_->constant_segment();
  if (constants == nullptr || constants->offsets() == nullptr || index >= constants->offsets()->size()) {
    return error(ErrorCode::kMalformed, "data_buffer_idx ", index, " refers to a constant that the program lacks");
  }
  std::span<const uint8_t> bytes = segment(constants->segment_index());
  uint64_t offset = constants->offsets()->Get(index);
  if (!range_fits(offset, nbytes, bytes.size())) {
    return error(ErrorCode::kMalformed, "constant ", index, " of ", nbytes, " bytes at offset ", offset,
                 " runs past the end of the constant segment (", bytes.size(), " bytes)");
  }
  return bytes.data() + offset;
}

std::vector<std::string> Program::method_names() const {
  std::vector<std::string> names;
  for (const auto& plan : methods_) names.push_back(plan->name);
  return names;
}

Result<MethodPlan*> Program::method(std::string_view name) const {
  for (const auto& plan : methods_) {
    if (plan->name == name) return plan.get();
  }
  std::string available;
  for (const auto& plan : methods_) available += (available.empty() ? "" : ", ") + plan->name;
  return error(ErrorCode::kMethodNotFound, "method '", name, "' not found; the program has: ",
               available.empty() ? "no methods" : available);
}

}  // namespace ei
