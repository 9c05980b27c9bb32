#include "data/augment_device.h"
#include "data/augment_device_cuda.h"

#include <cstring>

#include "data/augment_pixel.h"
#include "engine/error.h"

#if RDD_WITH_CUDA
#include <cuda_runtime.h>

#include "engine/cuda_context.h"
#endif

namespace rdd::data {

DeviceSample upload_sample(const Sample& s, Device device) {
  RDD_CHECK(s.image.channels == 3 && s.label.channels == 1 && s.label.height == s.image.height &&
                s.label.width == s.image.width,
            "upload_sample: image ", s.image.width, "x", s.image.height, "x", s.image.channels, " and label ",
            s.label.width, "x", s.label.height, " do not match");
  Tensor img = Tensor::empty({s.image.height, s.image.width, 3}, DType::u8);
  Tensor lab = Tensor::empty({s.label.height, s.label.width}, DType::u8);
  std::memcpy(img.raw(), s.image.pixels.data(), s.image.pixels.size());
  std::memcpy(lab.raw(), s.label.pixels.data(), s.label.pixels.size());
  if (device.is_cpu()) return {img, lab};
  return {img.to(device), lab.to(device)};
}

void augment_cirkd_device(const std::vector<const DeviceSample*>& samples, const std::vector<AugmentRecord>& records,
                          const AugmentConfig& cfg, Tensor& images, Tensor& labels) {
  const char* who = "augment_cirkd_device";
  RDD_CHECK(cfg.preset == Preset::cirkd, who, ": preset ", preset_name(cfg.preset), " runs on the CPU loader only");
  RDD_CHECK(!samples.empty() && samples.size() == records.size(), who, ": ", samples.size(), " samples but ",
            records.size(), " records");
  const int64_t n = int64_t(samples.size());
  RDD_CHECK(images.defined() && images.shape() == Shape({n, 3, cfg.crop_h, cfg.crop_w}) && images.dtype() == DType::f32,
            who, ": images must be f32 [", n, ",3,", cfg.crop_h, ",", cfg.crop_w, "], got ",
            images.defined() ? images.desc() : "undefined");
  RDD_CHECK(labels.defined() && labels.shape() == Shape({n, cfg.crop_h, cfg.crop_w}) && labels.dtype() == DType::i32,
            who, ": labels must be i32 [", n, ",", cfg.crop_h, ",", cfg.crop_w, "], got ",
            labels.defined() ? labels.desc() : "undefined");
  const Device dev = images.device();
  RDD_CHECK(labels.device() == dev, who, ": images on ", dev.str(), " but labels on ", labels.device().str());
  std::vector<pixel::CirkdJob> jobs(samples.size());
  for (size_t i = 0; i < samples.size(); ++i) {
    const DeviceSample& s = *samples[i];
    const AugmentRecord& r = records[i];
    RDD_CHECK(s.image.dtype() == DType::u8 && s.image.ndim() == 3 && s.image.size(2) == 3 && s.label.dtype() == DType::u8 &&
                  s.label.ndim() == 2 && s.label.size(0) == s.image.size(0) && s.label.size(1) == s.image.size(1),
              who, ": sample ", i, " is not an (H,W,3) u8 image with an (H,W) u8 label");
    RDD_CHECK(s.image.device() == dev && s.label.device() == dev, who, ": sample ", i, " is on ", s.image.device().str(),
              " but the outputs are on ", dev.str());
    pixel::CirkdJob& j = jobs[i];
    j.image = static_cast<const uint8_t*>(s.image.raw());
    j.label = static_cast<const uint8_t*>(s.label.raw());
    j.H = s.height();
    j.W = s.width();
    j.h = std::max(0, std::min(cfg.crop_h, r.scaled_h - r.crop_y));
    j.w = std::max(0, std::min(cfg.crop_w, r.scaled_w - r.crop_x));
    j.crop_y = r.crop_y;
    j.crop_x = r.crop_x;
    j.flip = r.flipped ? 1 : 0;
    j.inv = 1.0 / r.scale;
  }
  pixel::Norm norm;
  norm.bgr = cfg.norm.bgr ? 1 : 0;
  for (int c = 0; c < 3; ++c) norm.mean[c] = cfg.norm.mean[c], norm.stdev[c] = cfg.norm.stdev[c];
  float* out = images.data<float>();
  int32_t* lab = labels.data<int32_t>();
  const size_t plane = size_t(cfg.crop_h) * size_t(cfg.crop_w);
  if (dev.is_cuda()) {
#if RDD_WITH_CUDA
    cuda::cirkd_augment(jobs.data(), int(n), norm, cfg.crop_h, cfg.crop_w, out, lab,
                           cuda_context(dev.index).compute_stream());
#endif
    return;
  }
  for (int64_t i = 0; i < n; ++i)
    for (int y = 0; y < cfg.crop_h; ++y)
      for (int x = 0; x < cfg.crop_w; ++x) {
        float v[3];
        int32_t l;
        pixel::cirkd_pixel(jobs[size_t(i)], norm, y, x, cfg.crop_w, v, l);
        const size_t o = size_t(y) * size_t(cfg.crop_w) + size_t(x);
        for (int c = 0; c < 3; ++c) out[(size_t(i) * 3 + size_t(c)) * plane + o] = v[c];
        lab[size_t(i) * plane + o] = l;
      }
}

}  // namespace rdd::data
