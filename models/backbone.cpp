#include "models/backbone.h"

namespace rdd::models {

void Backbone::block_gradients_ready(size_t k, const std::string& name) {
  if (!hooked()) return;
  if (k == block_offsets_.size()) block_offsets_.push_back(first_offset_with_prefix(*hook_store_, name));
  if (block_offsets_[k] >= 0) (*hook_)(block_offsets_[k]);
}

void Backbone::all_gradients_ready() const {
  if (hooked()) (*hook_)(0);
}

}  // namespace rdd::models
