// Training augmentation on the device that holds the decoded images (the reference's advice: decode
// once into memory, then scale/crop/flip where the model runs). The CPU draws each image's parameters
// (plan_cirkd: the same draws as augment_train), one kernel resamples, pads, crops, flips and
// normalises the whole batch on the compute stream. Values are bit-identical to augment_train.
//
//   DeviceSample d = upload_sample(sample, Device::cuda(0));          // once per image (a GPU cache)
//   PhiloxStream rng = sample_stream(seed, slot);
//   AugmentRecord r = plan_cirkd(d.height(), d.width(), cfg, rng);
//   augment_cirkd_device({&d, ...}, {r, ...}, cfg, images, labels);   // (N,3,ch,cw) f32, (N,ch,cw) i32
//
// Samples and outputs may also be CPU tensors (the same code path on the host; used by the tests as
// the check that the shared pixel code reproduces augment_train). Only the cirkd preset: mmseg's
// cat_max_ratio and photometric distortion stay on the CPU loader.
#pragma once

#include <vector>

#include "data/augment.h"
#include "engine/tensor.h"

namespace rdd::data {

struct DeviceSample {
  Tensor image;  // (H, W, 3) u8 RGB
  Tensor label;  // (H, W) u8 train ids, kIgnoreU8 for ignore
  int height() const { return int(image.size(0)); }
  int width() const { return int(image.size(1)); }
};

DeviceSample upload_sample(const Sample& s, Device device);

// Applies drawn cirkd parameters. images: (N, 3, crop_h, crop_w) f32, labels: (N, crop_h, crop_w) i32,
// on the samples' device (all samples on one device).
void augment_cirkd_device(const std::vector<const DeviceSample*>& samples, const std::vector<AugmentRecord>& records,
                          const AugmentConfig& cfg, Tensor& images, Tensor& labels);

}  // namespace rdd::data
