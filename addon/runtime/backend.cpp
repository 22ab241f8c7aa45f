#include "runtime/backend.h"

#include "backends/xnnpack_graph.h"

namespace ei {

namespace {

const std::vector<const Backend*>& registry() {
  static const std::vector<const Backend*> backends = {xnn::xnnpack_backend()};
  return backends;
}

}  // namespace

const Backend* find_backend(std::string_view id) {
  for (const Backend* backend : registry()) {
    if (backend->id() == id) return backend;
  }
  return nullptr;
}

std::vector<std::string_view> backend_ids() {
  std::vector<std::string_view> ids;
  for (const Backend* backend : registry()) ids.push_back(backend->id());
  return ids;
}

}  // namespace ei
