#include "train/resolve_device.h"

#include "engine/error.h"

namespace rdd::train {

Device resolve_device(const std::string& spec) {
  if (spec == "auto") return default_device();
  const Device d = Device::parse(spec);
  if (d.is_cuda()) {
    RDD_CHECK(has_gpu(), "--device ", spec, ": no GPU here (", no_gpu_reason(), "); use --device cpu or auto");
    RDD_CHECK(d.index < gpu_count(), "--device ", spec, ": only ", gpu_count(), " GPU(s) found");
    announce_emulated_device(d);
  }
  return d;
}

}  // namespace rdd::train
